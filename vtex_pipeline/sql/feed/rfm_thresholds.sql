-- The RFM boundaries of the daily profile of day D, read from the stored int_windows and int_rfm (both
-- hold D: reference.py checks). One row per window (30d .. 360plus, lifetime) and R or M score that some
-- buyer of D has: the greatest recency (days) and the smallest amount (cents) among the buyers with
-- that score. R and M are rank quintiles, monotone in recency (descending) and amount (ascending), so
-- these five rows per window are the whole scoring rule of D: int_rfm_fixed.sql scores any recency and
-- amount with them, and scores every buyer of D exactly as int_rfm did (test_profile_reference.py).
WITH members AS (
    SELECT w.ckey, x.win, x.code, x.recency, x.cents
    FROM int_windows w
    JOIN int_rfm r USING (ckey)
    CROSS JOIN LATERAL (VALUES
        ('30d', r.rfm_30d, w.recency_lifetime, w.cents_30d),
        ('60d', r.rfm_60d, w.recency_lifetime, w.cents_60d),
        ('90d', r.rfm_90d, w.recency_lifetime, w.cents_90d),
        ('180d', r.rfm_180d, w.recency_lifetime, w.cents_180d),
        ('360d', r.rfm_360d, w.recency_lifetime, w.cents_360d),
        ('360plus', r.rfm_360plus, w.recency_360plus, w.cents_360plus),
        ('lifetime', r.r_lifetime::VARCHAR || r.f_lifetime::VARCHAR || r.m_lifetime::VARCHAR,
         w.recency_lifetime, w.cents_lifetime)
    ) AS x(win, code, recency, cents)
    WHERE x.code IS NOT NULL
)
SELECT win, 'R' AS dimension, code[1]::INTEGER AS score, max(recency)::BIGINT AS bound FROM members GROUP BY ALL
UNION ALL
SELECT win, 'M', code[3]::INTEGER, min(cents)::BIGINT FROM members GROUP BY ALL
