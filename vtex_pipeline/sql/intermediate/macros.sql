-- Scalar helpers shared by the intermediate and mart SQL (not a model: run on the connection before
-- any model; temporary, they live with the connection).

-- Tie-aware quintile of SQL rank() among n: least(5, 1 + (5 * (rank - 1)) // (n - 1)), in exact
-- integer arithmetic (= 1 + floor(5 * percent_rank()) without floating point); n = 1 scores 5.
CREATE OR REPLACE TEMP MACRO rfm_quintile(r, n) AS
    CASE WHEN n = 1 THEN 5 ELSE least(5, 1 + (5 * (r - 1)) // (n - 1)) END;

-- F from fixed thresholds: t2..t5 are the minimum purchase counts for scores 2..5 (1 below t2).
CREATE OR REPLACE TEMP MACRO rfm_frequency(orders, t2, t3, t4, t5) AS
    CASE WHEN orders >= t5 THEN 5 WHEN orders >= t4 THEN 4 WHEN orders >= t3 THEN 3
         WHEN orders >= t2 THEN 2 ELSE 1 END;

-- The three-digit RFM code of a window (R, F and M scores), NULL when the window holds no purchase.
-- r and m are the customer's ranks among the n buyers of the window; t2..t5 as in rfm_frequency.
CREATE OR REPLACE TEMP MACRO rfm_code(orders, r, m, n, t2, t3, t4, t5) AS
    CASE WHEN orders > 0 THEN rfm_quintile(r, n)::VARCHAR
        || rfm_frequency(orders, t2, t3, t4, t5)::VARCHAR
        || rfm_quintile(m, n)::VARCHAR END;

-- c / n rounded half-even to an integer (c, n integers, n > 0): cents -> average cents.
CREATE OR REPLACE TEMP MACRO div_half_even(c, n) AS
    sign(c) * (abs(c) // n + CASE
        WHEN 2 * (abs(c) % n) > n THEN 1
        WHEN 2 * (abs(c) % n) = n AND (abs(c) // n) % 2 = 1 THEN 1
        ELSE 0 END);

-- Integer cents -> DECIMAL(18,2), exactly (no floating point on the way).
CREATE OR REPLACE TEMP MACRO cents_to_amount(c) AS (c::DECIMAL(18, 0) * 0.01)::DECIMAL(18, 2);

-- step 2-3 on a list already sorted by list_sort (`s` is referenced by position inside the lambda)
CREATE OR REPLACE TEMP MACRO first_occurrences(s) AS
    list_sort(list_transform(
        list_filter(s, lambda x, i: i = 1 OR (x >> 40) <> (s[i - 1] >> 40)),
        lambda x: ((x & 1099511627775) << 24) | (x >> 40)));

-- how many values of a recency-ordered list fall in a window of `n` purchases (seq <= n)
CREATE OR REPLACE TEMP MACRO prefix_length(l, n) AS
    len(list_filter(l, lambda x: (x >> 24) < (n + 1) * 1000000));
