-- One row per request from an Apache "combined" log line:
--
--   203.0.113.4 - alice [14/May/2024:08:01:44 +0000] "GET /cart HTTP/1.1" 200 6131 "referer" "user agent"
--   host        ident user [time]                       "method path protocol" status bytes ...
--
-- regexp_match returns the capture groups as a list of strings (NULL when the line does
-- not match at all); list indexes are 1-based. The regex is Rust `regex` syntax, and SQL
-- string literals keep backslashes as they are.
--
-- bytes is "-" when no body was sent (304, HEAD, some errors): NULL, not 0.
-- %z reads the "+0000" offset; to_timestamp returns the instant in UTC.
SELECT m[1]                                       AS ip,
       to_timestamp(m[2], '%d/%b/%Y:%H:%M:%S %z') AS ts,
       m[3]                                       AS method,
       m[4]                                       AS path,
       CAST(m[5] AS INT)                          AS status,
       CAST(NULLIF(m[6], '-') AS BIGINT)          AS bytes
FROM (
  SELECT regexp_match(line, '^(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) (\S+)[^"]*" (\d{3}) (\d+|-)') AS m
  FROM access_log
) l
