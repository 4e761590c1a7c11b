-- wrk script for the HTTP write benchmark: every request is
--   PUT /channels/bench-feed  {"celsius":22.4}
-- on the keep-alive connection wrk holds open (the path comes from the URL given to wrk).
wrk.method = "PUT"
wrk.body = '{"celsius":22.4}'
wrk.headers["Content-Type"] = "application/json"
