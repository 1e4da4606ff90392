-- The ledger schema as made by ocs-transfer before Alembic (schema version 1),
-- captured from that code's SQLite ledger, for the in-place upgrade test.
CREATE TABLE ocs_transfer_schema_version (
	version INTEGER NOT NULL
);
CREATE TABLE ocs_destinations (
	id INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	display_name VARCHAR(200) NOT NULL, 
	provider VARCHAR(64) NOT NULL, 
	path TEXT NOT NULL, 
	layout VARCHAR(32) NOT NULL, 
	comment TEXT NOT NULL, 
	description TEXT NOT NULL, 
	enabled BOOLEAN NOT NULL, 
	active BOOLEAN NOT NULL, 
	delete_source BOOLEAN NOT NULL, 
	keep_days INTEGER, 
	scope VARCHAR(16) NOT NULL, 
	owner_id VARCHAR(200) NOT NULL, 
	options TEXT NOT NULL, 
	credentials TEXT NOT NULL, 
	last_test_ok BOOLEAN, 
	last_test_message TEXT NOT NULL, 
	last_test_at FLOAT, 
	created_at FLOAT NOT NULL, 
	updated_at FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);
CREATE INDEX ix_ocs_destinations_scope_owner ON ocs_destinations (scope, owner_id);
CREATE TABLE ocs_source_files (
	id INTEGER NOT NULL, 
	store TEXT NOT NULL, 
	path TEXT NOT NULL, 
	size BIGINT, 
	context TEXT NOT NULL, 
	delete_source BOOLEAN NOT NULL, 
	delete_state VARCHAR(16) NOT NULL, 
	deleted_at FLOAT, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE ocs_transfers (
	id INTEGER NOT NULL, 
	file_id INTEGER NOT NULL, 
	destination_id INTEGER NOT NULL, 
	destination_name VARCHAR(200) NOT NULL, 
	snapshot TEXT NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at FLOAT NOT NULL, 
	last_error TEXT NOT NULL, 
	lease VARCHAR(64), 
	worker VARCHAR(200) NOT NULL, 
	heartbeat_at FLOAT, 
	cancel_requested BOOLEAN NOT NULL, 
	bytes_done BIGINT NOT NULL, 
	size BIGINT, 
	md5 VARCHAR(32) NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	provider_checksum TEXT NOT NULL, 
	remote_path TEXT NOT NULL, 
	remote_version TEXT NOT NULL, 
	link TEXT NOT NULL, 
	created_at FLOAT NOT NULL, 
	updated_at FLOAT NOT NULL, 
	started_at FLOAT, 
	finished_at FLOAT, 
	expired_at FLOAT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(file_id) REFERENCES ocs_source_files (id) ON DELETE CASCADE
);
CREATE INDEX ix_ocs_transfers_file ON ocs_transfers (file_id);
CREATE INDEX ix_ocs_transfers_due ON ocs_transfers (state, next_attempt_at);
INSERT INTO ocs_transfer_schema_version (version) VALUES (1);
