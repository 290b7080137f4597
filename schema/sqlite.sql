-- Generated from statestore's models for sqlite by `statestore schema --write schema/`; do not edit.

CREATE TABLE logbooks (
	name VARCHAR(255) NOT NULL, 
	meta JSON NOT NULL, 
	id INTEGER NOT NULL, 
	uuid CHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_logbooks PRIMARY KEY (id), 
	CONSTRAINT uq_logbooks_uuid UNIQUE (uuid)
);

CREATE TABLE flow_details (
	logbook_id INTEGER NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	state VARCHAR(16), 
	meta JSON NOT NULL, 
	id INTEGER NOT NULL, 
	uuid CHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_flow_details PRIMARY KEY (id), 
	CONSTRAINT ck_flow_details_state CHECK (state IN ('PENDING', 'RUNNING', 'SUCCESS', 'FAILURE', 'REVERTED', 'SUSPENDING', 'SUSPENDED', 'RESUMING')), 
	CONSTRAINT fk_flow_details_logbook_id_logbooks FOREIGN KEY(logbook_id) REFERENCES logbooks (id) ON DELETE CASCADE, 
	CONSTRAINT uq_flow_details_uuid UNIQUE (uuid)
);

CREATE INDEX ix_flow_details_logbook_id ON flow_details (logbook_id);

CREATE TABLE atom_details (
	flow_detail_id INTEGER NOT NULL, 
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
	id INTEGER NOT NULL, 
	uuid CHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_atom_details PRIMARY KEY (id), 
	CONSTRAINT ck_atom_details_kind CHECK (kind IN ('task', 'retry')), 
	CONSTRAINT ck_atom_details_state CHECK (state IN ('PENDING', 'RUNNING', 'SUCCESS', 'FAILURE', 'REVERTING', 'REVERTED', 'REVERT_FAILURE', 'IGNORE', 'RETRYING')), 
	CONSTRAINT ck_atom_details_intention CHECK (intention IN ('EXECUTE', 'IGNORE', 'REVERT', 'RETRY')), 
	CONSTRAINT fk_atom_details_flow_detail_id_flow_details FOREIGN KEY(flow_detail_id) REFERENCES flow_details (id) ON DELETE CASCADE, 
	CONSTRAINT uq_atom_details_uuid UNIQUE (uuid)
);

CREATE INDEX ix_atom_details_flow_detail_id ON atom_details (flow_detail_id);
