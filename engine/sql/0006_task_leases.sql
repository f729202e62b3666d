-- Task leases (docs/ARCHITECTURE.md "Task lifecycle"). A task is 'queued' or 'running' only
-- while an owner (one Ingress replica, serve_app/leases.py) renews its lease; a task whose lease
-- has expired (owner dead, or cut off from the database for longer than the lease) is claimed
-- by a live owner and resumed: only its plants without a stored run are forecast again.
-- attempts counts the claims (creation = 1); past tasks.max_attempts the task ends 'failed'.
ALTER TABLE forecast_tasks
    ADD COLUMN owner            text,
    ADD COLUMN lease_expires_at timestamptz,
    ADD COLUMN attempts         integer NOT NULL DEFAULT 1;
CREATE INDEX forecast_tasks_open ON forecast_tasks (lease_expires_at) WHERE status IN ('queued', 'running');

-- Re-generating an issue time keeps both versions (bitemporal: valid/issue time x written by
-- which task, when): a run's natural key includes the task that wrote it, so a new task is a
-- new run (reads take the latest written, run_id), while the same task writing a plant again
-- (a retried or resumed batch) replaces its own run: one complete run per plant and task.
-- Runs written without a task (task_id NULL) keep the old key (NULLS NOT DISTINCT).
DO $$
DECLARE name text;
BEGIN
    SELECT conname INTO name FROM pg_constraint
    WHERE conrelid = 'forecast_runs'::regclass AND contype = 'u'
      AND array_length(conkey, 1) = 6;
    EXECUTE format('ALTER TABLE forecast_runs DROP CONSTRAINT %I', name);
END $$;
ALTER TABLE forecast_runs ADD CONSTRAINT forecast_runs_version_key UNIQUE NULLS NOT DISTINCT
    (location_id, issue_time, forecast_type, model_version, resolution_minutes, horizon_hours, task_id);
CREATE INDEX forecast_runs_task ON forecast_runs (task_id) WHERE task_id IS NOT NULL;
