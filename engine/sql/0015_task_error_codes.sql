-- A task's per-plant errors carry a stable code (engine.validation.PLANT_ERRORS), not only a sentence.
--
-- forecast_tasks.errors was {location_id or "task": reason}; it becomes
-- {location_id or "task": {"code": <one of engine.validation.PLANT_ERRORS>, "message": reason}}, the
-- code given by the producer that found the problem. A reason stored before codes existed is a
-- sentence only: it gets the code 'legacy' ("only its sentence is known"), never a code guessed
-- from its text. The CHECK keeps one shape: every value an object with a code and a message.

UPDATE forecast_tasks t SET errors = (
    SELECT jsonb_object_agg(e.key, CASE WHEN jsonb_typeof(e.value) = 'object' AND e.value ? 'code'
                                             AND e.value ? 'message' THEN e.value
                                        ELSE jsonb_build_object('code', 'legacy', 'message', e.value #>> '{}') END)
    FROM jsonb_each(t.errors) AS e)
WHERE jsonb_path_exists(t.errors, '$.* ? (!(exists(@.code) && exists(@.message)))');

ALTER TABLE forecast_tasks ADD CONSTRAINT forecast_tasks_errors_coded CHECK (
    jsonb_typeof(errors) = 'object'
    AND NOT jsonb_path_exists(errors, '$.* ? (!(exists(@.code) && exists(@.message)))'));
