-- The claim on PostgreSQL as one statement; see claim/postgresql.py for why it is shaped so.
-- Parameters (bound by name): worker_uuid, now, activate. Columns: every column of tasks, then job_uuid,
-- job_priority_now, job_type, newly_claimed, raced. With activate, the status changes it makes are
-- appended to status_history (history) and to the change feed (changed): nothing reads those CTEs,
-- PostgreSQL runs data-modifying CTEs to completion anyway.
WITH seen AS (
    -- The worker if it may get work, as the statement's snapshot has it, with its row version.
    SELECT id, xmin AS seen_version FROM workers
    WHERE uuid = :worker_uuid AND deleted_at IS NULL AND status = 'awake' AND status_requested = ''
),
w AS (
    -- The claim counts as a heartbeat, and its row lock makes claims of one
    -- worker take turns. Guarded by the row version: if another transaction
    -- changed the row since the snapshot (a claim of this worker, a heartbeat),
    -- PostgreSQL re-checks this WHERE on the new version, it fails, w is empty,
    -- nothing is claimed, and the row says raced: the caller runs the statement
    -- again, with a snapshot that sees the other transaction's work.
    UPDATE workers SET last_seen_at = :now, updated_at = :now
    FROM seen
    WHERE workers.id = seen.id
      AND workers.xmin = seen.seen_version
    RETURNING workers.id, workers.uuid, workers.supported_task_types
),
current_task AS (
    SELECT t.id FROM tasks t JOIN jobs j ON j.id = t.job_id
    WHERE t.worker_id = (SELECT id FROM w) AND t.status = 'active' AND j.status IN ('active', 'queued')
    ORDER BY t.id LIMIT 1
),
candidate AS (
    -- Only tasks in the FROM list, so the planner can walk ix_tasks_claimable
    -- in claim order and stop at the first row that passes; the worker's
    -- values are InitPlans (computed once), the job a primary-key probe.
    -- status: the row's as locked (READ COMMITTED re-reads a row changed
    -- since the snapshot), the old status of the task's history entry.
    SELECT t.id, t.job_id, t.status FROM tasks t
    WHERE EXISTS (SELECT 1 FROM w) AND NOT EXISTS (SELECT 1 FROM current_task)
      AND t.status IN ('queued', 'soft-failed') AND t.pending_dependencies = 0 AND t.job_schedulable
      AND t.type = ANY ((SELECT string_to_array(w.supported_task_types, ',') FROM w)::text[])
      AND EXISTS (SELECT 1 FROM jobs j
                  WHERE j.id = t.job_id AND j.status IN ('active', 'queued')
                    AND (j.worker_tag_id IS NULL
                         OR j.worker_tag_id IN (SELECT m.worker_tag_id FROM worker_tag_membership m
                                                WHERE m.worker_id = (SELECT id FROM w))))
      AND NOT EXISTS (SELECT 1 FROM task_failures f WHERE f.task_id = t.id AND f.worker_id = (SELECT id FROM w))
      AND NOT EXISTS (SELECT 1 FROM job_blocks b
                      WHERE b.job_id = t.job_id AND b.worker_id = (SELECT id FROM w) AND b.task_type = t.type)
    ORDER BY t.job_priority DESC, t.priority DESC, t.id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
),
claimed AS (
    UPDATE tasks SET worker_id = w.id, last_touched_at = :now, updated_at = :now,
        status = CASE WHEN :activate THEN 'active' ELSE tasks.status END
    FROM candidate CROSS JOIN w
    WHERE tasks.id = candidate.id AND tasks.status IN ('queued', 'soft-failed')
    RETURNING tasks.*
),
job_activated AS (
    UPDATE jobs SET status = 'active', updated_at = :now
    WHERE :activate AND status = 'queued' AND id IN (SELECT job_id FROM claimed)
    RETURNING jobs.id, jobs.uuid
),
history AS (
    -- The task's change, then the job's. The job gets an entry only if this
    -- claim's UPDATE changed its row (job_activated returns it, and the row
    -- stays locked until the statement commits); see claim/postgresql.py.
    INSERT INTO status_history (job_id, task_id, old_status, new_status, reason, who, at)
    SELECT c.job_id, c.id, cand.status, 'active', 'claimed by the worker', CAST(w.uuid AS text), :now
    FROM claimed c JOIN candidate cand ON cand.id = c.id CROSS JOIN w
    WHERE :activate
    UNION ALL
    SELECT ja.id, NULL, 'queued', 'active', 'a task became active', CAST(w.uuid AS text), :now
    FROM job_activated ja CROSS JOIN w
),
changed AS (
    -- The same two changes, by uuid, for the change feed; tx is the writing transaction's id (the
    -- feed's commit order, see changes/tables.py). The task's job is a primary-key probe.
    INSERT INTO changes (tx, kind, job_uuid, task_uuid, old_value, new_value, reason, who, at)
    SELECT CAST(CAST(pg_current_xact_id() AS text) AS bigint), 'task.status', j.uuid, c.uuid, cand.status,
           'active', 'claimed by the worker', CAST(w.uuid AS text), :now
    FROM claimed c JOIN candidate cand ON cand.id = c.id JOIN jobs j ON j.id = c.job_id CROSS JOIN w
    WHERE :activate
    UNION ALL
    SELECT CAST(CAST(pg_current_xact_id() AS text) AS bigint), 'job.status', ja.uuid, NULL, 'queued',
           'active', 'a task became active', CAST(w.uuid AS text), :now
    FROM job_activated ja CROSS JOIN w
)
SELECT c.*, j.uuid AS job_uuid, j.priority AS job_priority_now, j.job_type,
       true AS newly_claimed, false AS raced
FROM claimed c JOIN jobs j ON j.id = c.job_id
UNION ALL
SELECT t.*, j.uuid, j.priority, j.job_type, false, false
FROM current_task ct JOIN tasks t ON t.id = ct.id JOIN jobs j ON j.id = t.job_id
UNION ALL
-- No task: one row of NULLs if the worker exists, so that telling "no work"
-- from "no such worker" costs no second round trip; raced if the worker may
-- get work but its row changed under the statement (see w).
SELECT (NULL::tasks).*, NULL::uuid, NULL::smallint, NULL::varchar, NULL::boolean,
       EXISTS (SELECT 1 FROM seen) AND NOT EXISTS (SELECT 1 FROM w)
WHERE NOT EXISTS (SELECT 1 FROM claimed) AND NOT EXISTS (SELECT 1 FROM current_task)
  AND EXISTS (SELECT 1 FROM workers WHERE uuid = :worker_uuid)
