-- A worker completes its active task, on PostgreSQL, as one statement; see farm/completion/__init__.py.
-- Parameters (bound by name): task_uuid, worker_uuid, now, activity (NULL keeps the task's), reason, who.
-- One row when the task was completed: task_id, job_id, job_uuid, exact, all_done, work. No row when it
-- was not (not active on this worker, or its job not active): the caller runs the state machine's
-- transaction. The change is appended to status_history (history) and to the change feed (changed); a
-- dependent left with nothing pending is announced on channel statestore_work (woken).
WITH seen_job AS (
    -- The task's job as the statement's snapshot has it, with its row version.
    SELECT j.id, j.xmin AS seen_version FROM jobs j
    WHERE j.id = (SELECT job_id FROM tasks WHERE uuid = :task_uuid)
),
job AS (
    -- Locked first: the one lock order of every state-machine call (job, task, worker). A row
    -- locked after a wait is read as its newest version: status and version are the latest.
    -- NO KEY: inserts checking a foreign key to the job need not wait.
    SELECT j.id, j.uuid, j.status, j.xmin AS version FROM jobs j
    WHERE j.id = (SELECT id FROM seen_job)
    FOR NO KEY UPDATE
),
task AS (
    -- Only an active task of this live worker, in an active job: anything else is the state
    -- machine's transaction's to decide (a Conflict, or a ripple such as a pause).
    SELECT t.id, t.job_id, t.worker_id, t.steps_completed, t.steps_total FROM tasks t
    WHERE t.uuid = :task_uuid
      AND t.job_id = (SELECT id FROM job WHERE status = 'active')
      AND t.status = 'active'
      AND t.worker_id = (SELECT id FROM workers WHERE uuid = :worker_uuid AND deleted_at IS NULL)
    FOR UPDATE
),
done AS (
    UPDATE tasks SET status = 'completed', steps_completed = task.steps_total,
        last_touched_at = :now, updated_at = :now, activity = COALESCE(:activity, tasks.activity)
    FROM task
    WHERE tasks.id = task.id
    RETURNING tasks.id, tasks.job_id
),
dependents AS (
    -- One dependency fewer to wait for. A decrement, not a recount: a recount reads the other
    -- dependencies in this statement's snapshot and would miss one completed concurrently,
    -- where a decrement that waited for another's row lock applies to the row's newest version.
    UPDATE tasks SET pending_dependencies = GREATEST(tasks.pending_dependencies - 1, 0)
    FROM task_dependencies d JOIN done ON d.dependency_id = done.id
    WHERE tasks.id = d.task_id
    RETURNING tasks.id, tasks.pending_dependencies, tasks.status
),
seen AS (
    UPDATE workers SET last_seen_at = :now
    FROM task
    WHERE workers.id = task.worker_id
    RETURNING workers.id
),
job_steps AS (
    -- Every completion writes its job's row, even when no step changes: a completion that
    -- finds the version it started with then knows no other completed a task meanwhile.
    UPDATE jobs SET steps_completed = jobs.steps_completed + (task.steps_total - task.steps_completed)
    FROM task
    WHERE jobs.id = task.job_id
    RETURNING jobs.id
),
history AS (
    INSERT INTO status_history (job_id, task_id, old_status, new_status, reason, who, at)
    SELECT done.job_id, done.id, 'active', 'completed', :reason, :who, :now FROM done
),
changed AS (
    -- tx: the writing transaction's id, the feed's commit order (see changes/tables.py).
    INSERT INTO changes (tx, kind, job_uuid, task_uuid, old_value, new_value, reason, who, at)
    SELECT CAST(CAST(pg_current_xact_id() AS text) AS bigint), 'task.status', job.uuid, :task_uuid,
           'active', 'completed', :reason, :who, :now
    FROM done CROSS JOIN job
),
woken AS (
    -- Wake claim waiters (at commit) only if a dependent may be claimed now: a NOTIFY takes a
    -- database-wide lock at commit, which most completions (of leaf tasks) need not pay for. Not a
    -- data-modifying CTE, so it runs only because the final SELECT reads it.
    SELECT pg_notify('statestore_work', '') FROM dependents
    WHERE pending_dependencies = 0 AND status IN ('queued', 'soft-failed')
    LIMIT 1
)
SELECT task.id AS task_id, job.id AS job_id, job.uuid AS job_uuid,
       -- No state-machine writer of the job committed since the snapshot (they all hold the
       -- job's lock and write its row), so the snapshot's view of its tasks is whole.
       job.version = seen_job.seen_version AS exact,
       NOT EXISTS (
           SELECT 1 FROM tasks o
           WHERE o.job_id = task.job_id AND o.id <> task.id
             AND o.status IN ('active', 'queued', 'soft-failed', 'paused', 'failed', 'canceled')
       ) AS all_done,
       EXISTS (SELECT 1 FROM woken) AS work
FROM task CROSS JOIN job CROSS JOIN seen_job
