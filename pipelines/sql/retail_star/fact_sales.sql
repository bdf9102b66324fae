-- fact_sales: one row per sale line (grain: sales.rowid).
--
-- Keys:
--   date_key      YYYYMMDD of the sale's date, the same formula as dim_date.date_key
--   category_key  via the product's (normalised) category; unknown product -> Uncategorized
--   country_key   via the customer's country; unknown customer or country -> XX
-- LEFT JOINs to the cleaned sources + COALESCE to the unknown member, then inner joins to
-- the dimensions (which always contain the unknown members), so no sale is dropped.
--
-- quantity (int) * price (decimal(10,2)) stays an exact decimal with two places.
SELECT s.rowid,
       CAST(to_char(CAST(s.ts AS DATE), '%Y%m%d') AS INT) AS date_key,
       cat.category_key,
       cty.country_key,
       s.customer_id,
       s.product_id,
       s.quantity,
       s.price,
       s.quantity * s.price AS amount
FROM sales_clean s
LEFT JOIN products_clean p  ON p.product_id = s.product_id
LEFT JOIN customers_clean c ON c.customer_id = s.customer_id
JOIN dim_category cat ON cat.category = COALESCE(p.category, 'Uncategorized')
JOIN dim_country cty  ON cty.country_code = COALESCE(c.country_code, 'XX')
