-- How many customers went from each segment to each other between the previous profile and the
-- latest (diagonal = stayed). Customers new since the previous profile come from '(new)'; customers
-- gone from the latest go to '(gone)'. Empty when there is no previous profile.
CREATE OR REPLACE TABLE dash_segment_transitions AS
SELECT
    $previous_as_of::DATE AS previous_as_of,
    (SELECT max(as_of) FROM customer_profile_runs) AS as_of,
    coalesce(p.rfm_segment, '(new)') AS from_segment,
    coalesce(c.rfm_segment, '(gone)') AS to_segment,
    count(*) AS customers
FROM (SELECT customer_id, rfm_segment FROM customer_profile) c
FULL JOIN (SELECT customer_id, rfm_segment FROM dash_previous_profile) p USING (customer_id)
WHERE $previous_as_of::DATE IS NOT NULL
GROUP BY ALL
ORDER BY from_segment, to_segment;
