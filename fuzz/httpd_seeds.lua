-- Writes seed inputs for the HTTP server fuzzer: four split sizes, then a
-- request stream (keep-alive, pipelined, chunked, HEAD, bad and large ones).
--   luajit fuzz/httpd_seeds.lua DIR
local dir = assert(arg[1], "usage: httpd_seeds.lua DIR")
local splits = "\7\31\2\200"
local seeds = {
  get = "GET /s HTTP/1.1\r\nHost: x\r\n\r\n",
  pipeline = "GET /p HTTP/1.1\r\n\r\nGET /s HTTP/1.1\r\n\r\nPOST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /p HTTP/1.1\r\n\r\n",
  chunked = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: v\r\n\r\n",
  head = "HEAD /s HTTP/1.1\r\n\r\nHEAD /p HTTP/1.1\r\n\r\n",
  close = "GET /p?q=1 HTTP/1.0\r\n\r\nGET /s HTTP/1.1\r\n\r\n",
  methods = "DELETE /s HTTP/1.1\r\n\r\nGET /none HTTP/1.1\r\n\r\n",
  large = "POST /p HTTP/1.1\r\nContent-Length: 99999\r\n\r\n",
  expect = "POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
  bad = "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
}
for name, body in pairs(seeds) do
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(splits .. body)
  f:close()
end
