-- Data freshness per source at $now: when it last succeeded, how far its data reaches (watermark:
-- the end of the last synced window, raw sources only) and the lag of each. Raw sources sync every 4 hours, so more than 8 hours (two missed runs) is
-- stale; the profile and the icomm export are daily, so more than 36 hours is stale.
CREATE OR REPLACE TABLE dash_freshness AS
WITH sources AS (
    SELECT source, watermark, last_success_at, 8 AS stale_after_hours FROM sync_state
    UNION ALL
    SELECT 'catalog', NULL, max(fetched_at), 8 FROM raw_sales_channels HAVING count(*) > 0
    UNION ALL
    SELECT 'customer_profile', NULL, max(computed_at), 36
    FROM customer_profile_runs HAVING count(*) > 0
    UNION ALL
    SELECT 'icomm_export', NULL, max(sent_at), 36 FROM icomm_sent HAVING count(*) > 0
)
SELECT
    source,
    last_success_at,
    watermark,
    $now::TIMESTAMPTZ AS measured_at,
    round(epoch($now::TIMESTAMPTZ - last_success_at) / 3600, 2) AS hours_since_success,
    round(epoch($now::TIMESTAMPTZ - watermark) / 3600, 2) AS watermark_lag_hours,
    CASE WHEN epoch($now::TIMESTAMPTZ - last_success_at) / 3600 > stale_after_hours THEN 'stale' ELSE 'ok' END
        AS status
FROM sources
ORDER BY source;
