-- RFM group and segment sizes of the latest profile, with the size at the previous profile
-- (dash_previous_profile: the previous date of customer_profile_history) to show the change.
CREATE OR REPLACE TABLE dash_segments AS
WITH cur AS (
    SELECT coalesce(rfm_group, '(none)') AS rfm_group, coalesce(rfm_segment, '(none)') AS rfm_segment,
           count(*) AS customers
    FROM customer_profile
    GROUP BY ALL
), prev AS (
    SELECT coalesce(rfm_group, '(none)') AS rfm_group, coalesce(rfm_segment, '(none)') AS rfm_segment,
           count(*) AS customers
    FROM dash_previous_profile
    GROUP BY ALL
)
SELECT
    (SELECT max(as_of) FROM customer_profile_runs) AS as_of,
    rfm_group,
    rfm_segment,
    coalesce(c.customers, 0) AS customers,
    round(coalesce(c.customers, 0) / nullif(sum(coalesce(c.customers, 0)) OVER (), 0), 4) AS share,
    -- 0 when the previous profile had none of the segment; NULL when there is no previous profile
    CASE WHEN $previous_as_of::DATE IS NOT NULL THEN coalesce(p.customers, 0) END AS previous_customers
FROM cur c
FULL JOIN prev p USING (rfm_group, rfm_segment)
ORDER BY customers DESC, rfm_group, rfm_segment;
