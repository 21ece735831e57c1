-- Each request asks for an image not made before: the codes in $RANDOMS_FILE in turn, each
-- round at another size (128..1024), so no two requests share a cache entry until
-- codes x sizes requests have been made.
local randoms = {}
for line in io.lines(os.getenv("RANDOMS_FILE")) do
  if #line > 0 then randoms[#randoms + 1] = line end
end
local n = 0
local thread_id = 0
local counter = 0

function setup(thread)
  thread:set("thread_id", counter)
  counter = counter + 1
end

function request()
  n = n + 1
  local i = (n * 2 + thread_id) % #randoms + 1
  local size = 128 + math.floor((n * 2 + thread_id) / #randoms) % 897
  return wrk.format("GET", "/api/v1/qrcodes/" .. randoms[i] .. "/image.png?size=" .. size)
end
