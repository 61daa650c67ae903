-- One row describing the refresh: which date, time zone and period the other dash_ tables are for,
-- and which profiles the segment panels compare.
CREATE OR REPLACE TABLE dash_info AS
SELECT
    $integration::VARCHAR AS integration,
    $as_of::DATE AS as_of,
    $timezone::VARCHAR AS timezone,
    $period_days::INTEGER AS period_days,
    $now::TIMESTAMPTZ AS computed_at,
    (SELECT max(as_of) FROM customer_profile_runs) AS profile_as_of,
    $previous_as_of::DATE AS previous_profile_as_of,
    $previous_source::VARCHAR AS previous_profile_source,
    (SELECT min(currency_code) FROM raw_sales_channels WHERE currency_code IS NOT NULL) AS currency_code;
