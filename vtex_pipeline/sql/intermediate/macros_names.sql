-- profile_names(): its own file because a macro binds the type profile_name when it is created, and
-- stg_order_items.sql replaces that type: re-created before each per-day model (models.py).
-- Lists of packed (key, name code) integers (int_lists.sql, int_last_purchase.sql) back to names:
-- list_select gathers from the profile_name dictionary by position, no per-element lookup lambda.
CREATE OR REPLACE TEMP MACRO profile_names(codes) AS
    list_select(enum_range(NULL::profile_name), list_transform(codes, lambda c: c % 16777216 + 1));
