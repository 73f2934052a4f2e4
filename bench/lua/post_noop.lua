-- POST the same kind of JSON body to the no-op endpoint (the ceiling for write paths).
wrk.method = "POST"
wrk.body = '{"query":"tank build 1","search_mode":"quick","result_count":3}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Session-ID"] = "sess_000000000001000000000001"
