--- Wraps a loaded chunk as the node's entry function: the chunk gets the
-- command-line arguments as `...`.
local unpack = unpack or table.unpack
return function(chunk)
  return function(args)
    return chunk(unpack(args or {}, 1, args and #args or 0))
  end
end
