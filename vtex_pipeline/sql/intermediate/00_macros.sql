-- Scalar helpers shared by the intermediate and mart SQL (temporary: they live with the connection).

-- Tie-aware quintile of SQL rank() among n: least(5, 1 + (5 * (rank - 1)) // (n - 1)), in exact
-- integer arithmetic (= 1 + floor(5 * percent_rank()) without floating point); n = 1 scores 5.
CREATE OR REPLACE TEMP MACRO rfm_quintile(r, n) AS
    CASE WHEN n = 1 THEN 5 ELSE least(5, 1 + (5 * (r - 1)) // (n - 1)) END;

-- F from fixed thresholds: t2..t5 are the minimum purchase counts for scores 2..5 (1 below t2).
CREATE OR REPLACE TEMP MACRO rfm_frequency(orders, t2, t3, t4, t5) AS
    CASE WHEN orders >= t5 THEN 5 WHEN orders >= t4 THEN 4 WHEN orders >= t3 THEN 3
         WHEN orders >= t2 THEN 2 ELSE 1 END;

-- c / n rounded half-even to an integer (c, n integers, n > 0): cents -> average cents.
CREATE OR REPLACE TEMP MACRO div_half_even(c, n) AS
    sign(c) * (abs(c) // n + CASE
        WHEN 2 * (abs(c) % n) > n THEN 1
        WHEN 2 * (abs(c) % n) = n AND (abs(c) // n) % 2 = 1 THEN 1
        ELSE 0 END);

-- Integer cents -> DECIMAL(18,2), exactly (no floating point on the way).
CREATE OR REPLACE TEMP MACRO cents_to_amount(c) AS (c::DECIMAL(18, 0) * 0.01)::DECIMAL(18, 2);
