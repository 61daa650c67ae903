-- int_rfm as of a day T, scored with the boundaries of the daily run of D (rfm_thresholds.sql, the TEMP
-- table rfm_thresholds) instead of ranks among T's own buyers: what the Orders Feed path uses for the
-- customers it recomputes between two daily runs, so they are scored as the daily run would have
-- scored them. Same columns as int_rfm.
--
-- R of a recency r = the best R among D's buyers whose recency is r or more (none: 1); M of an amount m
-- = the best M among D's buyers whose amount is m or less (none: 1). Scores are monotone, so each is
-- the score of the nearest boundary: an ASOF join on five rows per window. A window without buyers on
-- D has no boundaries: its buyers on T score 5, as a population of one does in int_rfm. F has fixed
-- thresholds ($f2..$f5) either way.
WITH members AS (
    SELECT ckey, win, recency, cents, orders
    FROM int_windows
    CROSS JOIN LATERAL (VALUES
        ('30d', recency_lifetime, cents_30d, orders_30d),
        ('60d', recency_lifetime, cents_60d, orders_60d),
        ('90d', recency_lifetime, cents_90d, orders_90d),
        ('180d', recency_lifetime, cents_180d, orders_180d),
        ('360d', recency_lifetime, cents_360d, orders_360d),
        ('360plus', recency_360plus, cents_360plus, orders_360plus),
        ('lifetime', recency_lifetime, cents_lifetime, orders_lifetime)
    ) AS x(win, recency, cents, orders)
    WHERE orders > 0
), r_bounds AS (
    SELECT win, score, bound FROM rfm_thresholds WHERE dimension = 'R'
), m_bounds AS (
    SELECT win, score, bound FROM rfm_thresholds WHERE dimension = 'M'
), known AS (
    SELECT DISTINCT win FROM rfm_thresholds
), r_scored AS (   -- the boundary with the smallest recency still >= r
    SELECT m.ckey, m.win, m.cents, m.orders, b.score AS r
    FROM members m ASOF LEFT JOIN r_bounds b ON m.win = b.win AND b.bound >= m.recency
), scored AS (     -- the boundary with the greatest amount still <= m
    SELECT s.ckey, s.win, s.orders,
           CASE WHEN k.win IS NULL THEN 5 ELSE coalesce(s.r, 1) END AS r,
           rfm_frequency(s.orders, $f2, $f3, $f4, $f5) AS f,
           CASE WHEN k.win IS NULL THEN 5 ELSE coalesce(b.score, 1) END AS m
    FROM r_scored s
    ASOF LEFT JOIN m_bounds b ON s.win = b.win AND b.bound <= s.cents
    LEFT JOIN known k ON k.win = s.win
), pivoted AS (
    SELECT
        ckey,
        max(r::VARCHAR || f::VARCHAR || m::VARCHAR) FILTER (WHERE win = '30d') AS rfm_30d,
        max(r::VARCHAR || f::VARCHAR || m::VARCHAR) FILTER (WHERE win = '60d') AS rfm_60d,
        max(r::VARCHAR || f::VARCHAR || m::VARCHAR) FILTER (WHERE win = '90d') AS rfm_90d,
        max(r::VARCHAR || f::VARCHAR || m::VARCHAR) FILTER (WHERE win = '180d') AS rfm_180d,
        max(r::VARCHAR || f::VARCHAR || m::VARCHAR) FILTER (WHERE win = '360d') AS rfm_360d,
        max(r::VARCHAR || f::VARCHAR || m::VARCHAR) FILTER (WHERE win = '360plus') AS rfm_360plus,
        max(r) FILTER (WHERE win = 'lifetime') AS r_lifetime,
        max(f) FILTER (WHERE win = 'lifetime') AS f_lifetime,
        max(m) FILTER (WHERE win = 'lifetime') AS m_lifetime
    FROM scored
    GROUP BY ckey
)
SELECT $as_of::DATE AS as_of, p.*, s.rfm_group, s.rfm_segment
FROM pivoted p
LEFT JOIN seed_rfm_segments s ON s.f_score = p.f_lifetime AND s.r_score = p.r_lifetime
