-- Generated from statestore's models for postgresql by `statestore schema --write schema/`; do not edit.

CREATE TABLE change_feed (
	id BIGINT NOT NULL, 
	numbered BIGINT NOT NULL, 
	purged_tx BIGINT NOT NULL, 
	purged_id BIGINT NOT NULL, 
	CONSTRAINT pk_change_feed PRIMARY KEY (id)
);

CREATE TABLE changes (
	id BIGSERIAL NOT NULL, 
	tx BIGINT, 
	kind VARCHAR(32) NOT NULL, 
	job_uuid UUID, 
	task_uuid UUID, 
	worker_uuid UUID, 
	logbook_uuid UUID, 
	flow_uuid UUID, 
	atom_uuid UUID, 
	old_value VARCHAR(32), 
	new_value VARCHAR(32), 
	reason VARCHAR(255) NOT NULL, 
	who VARCHAR(64) NOT NULL, 
	at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT pk_changes PRIMARY KEY (id)
);

CREATE INDEX ix_changes_tx_id ON changes (tx, id);

CREATE TABLE log_books (
	name VARCHAR(255) NOT NULL, 
	meta JSON NOT NULL, 
	foreign_id TEXT, 
	id BIGSERIAL NOT NULL, 
	uuid UUID NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT pk_log_books PRIMARY KEY (id), 
	CONSTRAINT uq_log_books_uuid UNIQUE (uuid)
);

CREATE TABLE status_history (
	id BIGSERIAL NOT NULL, 
	job_id BIGINT NOT NULL, 
	task_id BIGINT, 
	old_status VARCHAR(32) NOT NULL, 
	new_status VARCHAR(32) NOT NULL, 
	reason VARCHAR(255) NOT NULL, 
	who VARCHAR(64) NOT NULL, 
	at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT pk_status_history PRIMARY KEY (id)
);

CREATE INDEX ix_status_history_job_id ON status_history (job_id, id);

CREATE INDEX ix_status_history_task_id ON status_history (task_id, id);

CREATE TABLE worker_tags (
	name VARCHAR(64) NOT NULL, 
	description VARCHAR(255) NOT NULL, 
	id BIGSERIAL NOT NULL, 
	uuid UUID NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT pk_worker_tags PRIMARY KEY (id), 
	CONSTRAINT uq_worker_tags_name UNIQUE (name), 
	CONSTRAINT uq_worker_tags_uuid UNIQUE (uuid)
);

CREATE TABLE workers (
	secret_hash VARCHAR(255) NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	address VARCHAR(39) NOT NULL, 
	platform VARCHAR(16) NOT NULL, 
	software VARCHAR(32) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	last_seen_at TIMESTAMP WITH TIME ZONE, 
	status_requested VARCHAR(16) NOT NULL, 
	lazy_status_request BOOLEAN NOT NULL, 
	supported_task_types VARCHAR(255) NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	can_restart BOOLEAN NOT NULL, 
	id BIGSERIAL NOT NULL, 
	uuid UUID NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT pk_workers PRIMARY KEY (id), 
	CONSTRAINT ck_workers_status CHECK (status IN ('starting', 'awake', 'asleep', 'error', 'testing', 'offline', 'restart')), 
	CONSTRAINT ck_workers_requested CHECK (status_requested = '' OR status_requested IN ('starting', 'awake', 'asleep', 'error', 'testing', 'offline', 'restart')), 
	CONSTRAINT uq_workers_uuid UNIQUE (uuid)
);

CREATE INDEX ix_workers_last_seen_at ON workers (last_seen_at);

CREATE TABLE flow_details (
	logbook_id BIGINT NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	state VARCHAR(16), 
	meta JSON NOT NULL, 
	foreign_id TEXT, 
	id BIGSERIAL NOT NULL, 
	uuid UUID NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT pk_flow_details PRIMARY KEY (id), 
	CONSTRAINT ck_flow_details_state CHECK (state IN ('PENDING', 'RUNNING', 'SUCCESS', 'FAILURE', 'REVERTED', 'SUSPENDING', 'SUSPENDED', 'RESUMING')), 
	CONSTRAINT fk_flow_details_logbook_id_log_books FOREIGN KEY(logbook_id) REFERENCES log_books (id) ON DELETE CASCADE, 
	CONSTRAINT uq_flow_details_uuid UNIQUE (uuid)
);

CREATE INDEX ix_flow_details_logbook_id ON flow_details (logbook_id);

CREATE TABLE jobs (
	name VARCHAR(64) NOT NULL, 
	job_type VARCHAR(32) NOT NULL, 
	priority SMALLINT NOT NULL, 
	status VARCHAR(32) NOT NULL, 
	activity VARCHAR(255) NOT NULL, 
	settings JSON NOT NULL, 
	metadata JSON NOT NULL, 
	delete_requested_at TIMESTAMP WITH TIME ZONE, 
	storage_checkout_id VARCHAR(255) NOT NULL, 
	worker_tag_id BIGINT, 
	steps_completed INTEGER NOT NULL, 
	steps_total INTEGER NOT NULL, 
	id BIGSERIAL NOT NULL, 
	uuid UUID NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT pk_jobs PRIMARY KEY (id), 
	CONSTRAINT ck_jobs_status CHECK (status IN ('active', 'canceled', 'completed', 'failed', 'paused', 'pause-requested', 'queued', 'cancel-requested', 'requeueing', 'under-construction')), 
	CONSTRAINT fk_jobs_worker_tag_id_worker_tags FOREIGN KEY(worker_tag_id) REFERENCES worker_tags (id) ON DELETE SET NULL, 
	CONSTRAINT uq_jobs_uuid UNIQUE (uuid)
);

CREATE INDEX ix_jobs_created_at ON jobs (created_at);

CREATE INDEX ix_jobs_delete_requested_at ON jobs (delete_requested_at);

CREATE INDEX ix_jobs_status ON jobs (status);

CREATE INDEX ix_jobs_updated_at ON jobs (updated_at);

CREATE INDEX ix_jobs_worker_tag_id ON jobs (worker_tag_id);

CREATE TABLE sleep_schedules (
	worker_id BIGINT NOT NULL, 
	is_active BOOLEAN NOT NULL, 
	days_of_week VARCHAR(64) NOT NULL, 
	start_time VARCHAR(5) NOT NULL, 
	end_time VARCHAR(5) NOT NULL, 
	next_check TIMESTAMP WITH TIME ZONE, 
	id BIGSERIAL NOT NULL, 
	uuid UUID NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT pk_sleep_schedules PRIMARY KEY (id), 
	CONSTRAINT uq_sleep_schedules_worker_id UNIQUE (worker_id), 
	CONSTRAINT fk_sleep_schedules_worker_id_workers FOREIGN KEY(worker_id) REFERENCES workers (id) ON DELETE CASCADE, 
	CONSTRAINT uq_sleep_schedules_uuid UNIQUE (uuid)
);

CREATE INDEX ix_sleep_schedules_is_active_next_check ON sleep_schedules (is_active, next_check);

CREATE TABLE worker_tag_membership (
	worker_tag_id BIGINT NOT NULL, 
	worker_id BIGINT NOT NULL, 
	CONSTRAINT pk_worker_tag_membership PRIMARY KEY (worker_tag_id, worker_id), 
	CONSTRAINT fk_worker_tag_membership_worker_tag_id_worker_tags FOREIGN KEY(worker_tag_id) REFERENCES worker_tags (id) ON DELETE CASCADE, 
	CONSTRAINT fk_worker_tag_membership_worker_id_workers FOREIGN KEY(worker_id) REFERENCES workers (id) ON DELETE CASCADE
);

CREATE INDEX ix_worker_tag_membership_worker_id ON worker_tag_membership (worker_id);

CREATE TABLE atom_details (
	flow_detail_id BIGINT NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	kind VARCHAR(8) NOT NULL, 
	state VARCHAR(16), 
	intention VARCHAR(16) NOT NULL, 
	results JSON, 
	failure JSON, 
	revert_results JSON, 
	revert_failure JSON, 
	version VARCHAR(64), 
	meta JSON NOT NULL, 
	foreign_id TEXT, 
	id BIGSERIAL NOT NULL, 
	uuid UUID NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT pk_atom_details PRIMARY KEY (id), 
	CONSTRAINT ck_atom_details_kind CHECK (kind IN ('task', 'retry')), 
	CONSTRAINT ck_atom_details_state CHECK (state IN ('PENDING', 'RUNNING', 'SUCCESS', 'FAILURE', 'REVERTING', 'REVERTED', 'REVERT_FAILURE', 'IGNORE', 'RETRYING')), 
	CONSTRAINT ck_atom_details_intention CHECK (intention IN ('EXECUTE', 'IGNORE', 'REVERT', 'RETRY')), 
	CONSTRAINT fk_atom_details_flow_detail_id_flow_details FOREIGN KEY(flow_detail_id) REFERENCES flow_details (id) ON DELETE CASCADE, 
	CONSTRAINT uq_atom_details_uuid UNIQUE (uuid)
);

CREATE INDEX ix_atom_details_flow_detail_id ON atom_details (flow_detail_id);

CREATE TABLE job_blocks (
	job_id BIGINT NOT NULL, 
	worker_id BIGINT NOT NULL, 
	task_type VARCHAR(32) NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT pk_job_blocks PRIMARY KEY (job_id, worker_id, task_type), 
	CONSTRAINT fk_job_blocks_job_id_jobs FOREIGN KEY(job_id) REFERENCES jobs (id) ON DELETE CASCADE, 
	CONSTRAINT fk_job_blocks_worker_id_workers FOREIGN KEY(worker_id) REFERENCES workers (id) ON DELETE CASCADE
);

CREATE INDEX ix_job_blocks_worker_id ON job_blocks (worker_id);

CREATE TABLE last_rendered (
	job_id BIGINT NOT NULL, 
	id BIGSERIAL NOT NULL, 
	uuid UUID NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT pk_last_rendered PRIMARY KEY (id), 
	CONSTRAINT fk_last_rendered_job_id_jobs FOREIGN KEY(job_id) REFERENCES jobs (id) ON DELETE CASCADE, 
	CONSTRAINT uq_last_rendered_uuid UNIQUE (uuid)
);

CREATE TABLE tasks (
	job_id BIGINT NOT NULL, 
	index_in_job INTEGER NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	type VARCHAR(32) NOT NULL, 
	priority SMALLINT NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	worker_id BIGINT, 
	last_touched_at TIMESTAMP WITH TIME ZONE, 
	commands JSON NOT NULL, 
	activity VARCHAR(255) NOT NULL, 
	steps_completed INTEGER NOT NULL, 
	steps_total INTEGER NOT NULL, 
	job_priority SMALLINT NOT NULL, 
	pending_dependencies INTEGER NOT NULL, 
	job_schedulable BOOLEAN NOT NULL, 
	id BIGSERIAL NOT NULL, 
	uuid UUID NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT pk_tasks PRIMARY KEY (id), 
	CONSTRAINT ck_tasks_status CHECK (status IN ('active', 'canceled', 'completed', 'failed', 'queued', 'soft-failed', 'paused')), 
	CONSTRAINT ck_tasks_pending_dependencies CHECK (pending_dependencies >= 0), 
	CONSTRAINT uq_tasks_job_id_index_in_job UNIQUE (job_id, index_in_job), 
	CONSTRAINT fk_tasks_job_id_jobs FOREIGN KEY(job_id) REFERENCES jobs (id) ON DELETE CASCADE, 
	CONSTRAINT fk_tasks_worker_id_workers FOREIGN KEY(worker_id) REFERENCES workers (id) ON DELETE SET NULL, 
	CONSTRAINT uq_tasks_uuid UNIQUE (uuid)
);

CREATE INDEX ix_tasks_claimable ON tasks (job_priority DESC, priority DESC, id) WHERE status IN ('queued', 'soft-failed') AND pending_dependencies = 0 AND job_schedulable;

CREATE INDEX ix_tasks_job_id_status ON tasks (job_id, status);

CREATE INDEX ix_tasks_status_last_touched_at ON tasks (status, last_touched_at);

CREATE INDEX ix_tasks_worker_id_status ON tasks (worker_id, status);

CREATE TABLE task_dependencies (
	task_id BIGINT NOT NULL, 
	dependency_id BIGINT NOT NULL, 
	CONSTRAINT pk_task_dependencies PRIMARY KEY (task_id, dependency_id), 
	CONSTRAINT ck_task_dependencies_not_self CHECK (task_id <> dependency_id), 
	CONSTRAINT fk_task_dependencies_task_id_tasks FOREIGN KEY(task_id) REFERENCES tasks (id) ON DELETE CASCADE, 
	CONSTRAINT fk_task_dependencies_dependency_id_tasks FOREIGN KEY(dependency_id) REFERENCES tasks (id) ON DELETE CASCADE
);

CREATE INDEX ix_task_dependencies_dependency_id ON task_dependencies (dependency_id);

CREATE TABLE task_failures (
	task_id BIGINT NOT NULL, 
	worker_id BIGINT NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT pk_task_failures PRIMARY KEY (task_id, worker_id), 
	CONSTRAINT fk_task_failures_task_id_tasks FOREIGN KEY(task_id) REFERENCES tasks (id) ON DELETE CASCADE, 
	CONSTRAINT fk_task_failures_worker_id_workers FOREIGN KEY(worker_id) REFERENCES workers (id) ON DELETE CASCADE
);

CREATE INDEX ix_task_failures_worker_id ON task_failures (worker_id);
