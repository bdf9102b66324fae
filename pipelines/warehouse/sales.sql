-- Sample sales for the warehouse example (MariaDB): appends @n deterministic rows to
-- shop.sales, numbered after the last row, so repeated loads extend the same history.
-- servers.sh runs it with `SET @n = 2000;` on start and `SET @n = N;` for `add N`:
--   { echo "SET @n = 2000;"; cat sales.sql; } | mariadb shop
--
-- Row i is a function of i alone. Messy on purpose, for the pipeline to clean up:
-- categories in mixed case and with a trailing space, a NULL country every 97th row.
-- Timestamps advance 1753 s (about 29 minutes) per row from 2024-01-01 08:00.

CREATE TABLE IF NOT EXISTS sales (
  rowid    BIGINT PRIMARY KEY AUTO_INCREMENT,
  product  VARCHAR(64),
  category VARCHAR(32),
  customer VARCHAR(64),
  country  CHAR(2),
  quantity INT,
  price    DECIMAL(10,2),
  ts       DATETIME
);

SET @base = (SELECT COALESCE(MAX(rowid), 0) FROM sales);

INSERT INTO sales (rowid, product, category, customer, country, quantity, price, ts)
SELECT i,
       product,
       CASE WHEN i % 11 = 0 THEN LOWER(category)
            WHEN i % 17 = 0 THEN UPPER(category)
            WHEN i % 41 = 0 THEN CONCAT(category, ' ')
            ELSE category END,
       CONCAT('customer-', LPAD(1 + (i * 37) % 250, 3, '0')),
       CASE WHEN i % 97 = 0 THEN NULL
            ELSE ELT(1 + (i * 7) % 5, 'DE', 'FR', 'NL', 'US', 'GB') END,
       1 + (i * 13) % 5,
       price,
       TIMESTAMP '2024-01-01 08:00:00' + INTERVAL (i * 1753) SECOND
FROM (
  SELECT seq + @base AS i,
         ELT(1 + (seq + @base) % 8, 'Espresso Machine', 'Coffee Beans 1kg', 'Milk Frother',
             'Tea Sampler', 'Garden Hose', 'Pruning Shears', 'Desk Lamp', 'Notebook A5') AS product,
         ELT(1 + (seq + @base) % 8, 'Kitchen', 'Kitchen', 'Kitchen', 'Kitchen',
             'Garden', 'Garden', 'Office', 'Office') AS category,
         ELT(1 + (seq + @base) % 8, '249.00', '18.50', '39.99', '12.75',
             '29.90', '17.25', '45.00', '3.49') AS price
  FROM seq_1_to_100000000
  WHERE seq <= @n
) AS numbered;
