-- RFM per window and lifetime. The population of a window is the customers with a purchase in it
-- (lifetime: every buyer up to D); everyone else gets NULL. R ranks recency descending (the most
-- recent buyers rank last and score best), M ranks monetary ascending, both with SQL rank() semantics
-- (ties share the lowest rank) and rfm_quintile(); F uses the configured thresholds ($f2..$f5). R is
-- computed from a histogram of recency days (see recency_rank), M with one rank() pass (monetary).
-- One row per buyer up to D, with the RFM group and segment of its lifetime (F, R).
WITH recency_histogram AS (   -- buyers per recency day and population (recency has a few hundred values)
    SELECT
        recency_lifetime AS recency,
        count(*) FILTER (WHERE orders_30d > 0) AS c_30d,
        count(*) FILTER (WHERE orders_60d > 0) AS c_60d,
        count(*) FILTER (WHERE orders_90d > 0) AS c_90d,
        count(*) FILTER (WHERE orders_180d > 0) AS c_180d,
        count(*) FILTER (WHERE orders_360d > 0) AS c_360d,
        count(*) FILTER (WHERE orders_360plus > 0) AS c_360plus,
        count(*) AS c_lifetime
    FROM int_windows
    GROUP BY 1
), population AS (   -- buyers per window: the histogram's totals (no second pass over int_windows)
    SELECT
        sum(c_30d)::BIGINT AS n_30d,
        sum(c_60d)::BIGINT AS n_60d,
        sum(c_90d)::BIGINT AS n_90d,
        sum(c_180d)::BIGINT AS n_180d,
        sum(c_360d)::BIGINT AS n_360d,
        sum(c_360plus)::BIGINT AS n_360plus,
        sum(c_lifetime)::BIGINT AS n_lifetime
    FROM recency_histogram
), recency_rank AS (
    -- rank() ordered by recency descending = 1 + the population members with a greater recency: a
    -- running sum over the histogram instead of one sort of every buyer per window
    SELECT
        recency,
        1 + coalesce(sum(c_30d) OVER later, 0) AS r_30d,
        1 + coalesce(sum(c_60d) OVER later, 0) AS r_60d,
        1 + coalesce(sum(c_90d) OVER later, 0) AS r_90d,
        1 + coalesce(sum(c_180d) OVER later, 0) AS r_180d,
        1 + coalesce(sum(c_360d) OVER later, 0) AS r_360d,
        1 + coalesce(sum(c_lifetime) OVER later, 0) AS r_lifetime
    FROM recency_histogram
    WINDOW later AS (ORDER BY recency DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
), recency_rank_360plus AS (
    SELECT recency, 1 + coalesce(sum(c) OVER (ORDER BY recency DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS r_360plus
    FROM (SELECT recency_360plus AS recency, count(*) AS c FROM int_windows WHERE orders_360plus > 0 GROUP BY 1)
), monetary AS (
    -- M: one row per population member and window (only members: a window's outsiders are not
    -- sorted at all), ranked in one window pass partitioned by window (w: 0 = 30d .. 5 = 360plus,
    -- 6 = lifetime), then pivoted back to one row per customer
    SELECT ckey, w, rank() OVER (PARTITION BY w ORDER BY cents) AS m
    FROM (
        SELECT ckey, 0 AS w, cents_30d AS cents FROM int_windows WHERE orders_30d > 0
        UNION ALL SELECT ckey, 1, cents_60d FROM int_windows WHERE orders_60d > 0
        UNION ALL SELECT ckey, 2, cents_90d FROM int_windows WHERE orders_90d > 0
        UNION ALL SELECT ckey, 3, cents_180d FROM int_windows WHERE orders_180d > 0
        UNION ALL SELECT ckey, 4, cents_360d FROM int_windows WHERE orders_360d > 0
        UNION ALL SELECT ckey, 5, cents_360plus FROM int_windows WHERE orders_360plus > 0
        UNION ALL SELECT ckey, 6, cents_lifetime FROM int_windows
    )
), monetary_rank AS (
    SELECT
        ckey,
        max(m) FILTER (WHERE w = 0) AS m_30d,
        max(m) FILTER (WHERE w = 1) AS m_60d,
        max(m) FILTER (WHERE w = 2) AS m_90d,
        max(m) FILTER (WHERE w = 3) AS m_180d,
        max(m) FILTER (WHERE w = 4) AS m_360d,
        max(m) FILTER (WHERE w = 5) AS m_360plus,
        max(m) FILTER (WHERE w = 6) AS m_lifetime
    FROM monetary
    GROUP BY ckey
), ranked AS (
    SELECT
        w.*,
        rr.r_30d, rr.r_60d, rr.r_90d, rr.r_180d, rr.r_360d, rp.r_360plus, rr.r_lifetime,
        mr.m_30d, mr.m_60d, mr.m_90d, mr.m_180d, mr.m_360d, mr.m_360plus, mr.m_lifetime
    FROM int_windows w
    JOIN recency_rank rr ON rr.recency = w.recency_lifetime
    LEFT JOIN recency_rank_360plus rp ON rp.recency = w.recency_360plus AND w.orders_360plus > 0
    JOIN monetary_rank mr ON mr.ckey = w.ckey
), scored AS (
    SELECT
        ckey,
        rfm_code(orders_30d, r_30d, m_30d, n_30d, $f2, $f3, $f4, $f5) AS rfm_30d,
        rfm_code(orders_60d, r_60d, m_60d, n_60d, $f2, $f3, $f4, $f5) AS rfm_60d,
        rfm_code(orders_90d, r_90d, m_90d, n_90d, $f2, $f3, $f4, $f5) AS rfm_90d,
        rfm_code(orders_180d, r_180d, m_180d, n_180d, $f2, $f3, $f4, $f5) AS rfm_180d,
        rfm_code(orders_360d, r_360d, m_360d, n_360d, $f2, $f3, $f4, $f5) AS rfm_360d,
        rfm_code(orders_360plus, r_360plus, m_360plus, n_360plus, $f2, $f3, $f4, $f5) AS rfm_360plus,
        rfm_quintile(r_lifetime, n_lifetime) AS r_lifetime,
        rfm_frequency(orders_lifetime, $f2, $f3, $f4, $f5) AS f_lifetime,
        rfm_quintile(m_lifetime, n_lifetime) AS m_lifetime
    FROM ranked, population
)
-- group and segment: the editable seed (seed_rfm_segments, reloaded by this model), keyed by lifetime
-- F and R; customers without a purchase get the prospects row (both scores empty) in the mart
SELECT $as_of::DATE AS as_of, r.*, s.rfm_group, s.rfm_segment
FROM scored r
LEFT JOIN seed_rfm_segments s ON s.f_score = r.f_lifetime AND s.r_score = r.r_lifetime
