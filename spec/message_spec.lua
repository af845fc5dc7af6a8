local message = require("halo.message")

describe("halo.message", function()
  before_each(function()
    message.define("spec_a/SpecPing", { Seq = "integer", Note = "string", Fast = "boolean", Ratio = "number",
                                           Tags = "list", Meta = "table", Any = "any" })
    message.define("spec_b/SpecPing", { Other = "string" })
    message.define("spec_b/Empty", {})
  end)
  after_each(function()
    for _, n in ipairs({ "spec_a/SpecPing", "spec_b/SpecPing", "spec_b/Empty" }) do message.undefine(n) end
  end)

  it("lists full names sorted, filtered by a case-insensitive substring", function()
    local all = message.list()
    local pos = {}
    for i, n in ipairs(all) do pos[n] = i end
    assert.is_true(pos["spec_a/SpecPing"] < pos["spec_b/Empty"])
    assert.is_true(pos["spec_b/Empty"] < pos["spec_b/SpecPing"])
    local pings = {}
    for _, n in ipairs(message.list("specPING")) do
      if n:find("^spec_") then pings[#pings + 1] = n end
    end
    assert.same({ "spec_a/SpecPing", "spec_b/SpecPing" }, pings)
    assert.same({}, message.list("spec_%")) -- plain text, not a pattern
    assert.same({}, message.list("no such shape"))
  end)

  it("finds a shape by full name (a leading # ignored) or by short name, the first full name winning", function()
    assert.equal("spec_b/Empty", message.info("#spec_b/Empty").type_name)
    assert.equal("spec_a/SpecPing", message.info("SpecPing").type_name)
    assert.equal("spec_b/SpecPing", message.info("spec_b/SpecPing").type_name)
    local none = { message.info("Nope") }
    assert.same({ nil, "EUNKNOWN: unknown message type Nope", "EUNKNOWN" }, none)
    local info = message.info("spec_b/SpecPing")
    assert.same({ type_name = "spec_b/SpecPing", kind = "table", fields = { { name = "Other", type = "string" } } },
      info)
  end)

  it("builds a message whose type is the short name, converting field values", function()
    local m = assert(message.build("spec_a/SpecPing", {
      Seq = "7.9", Note = 12, Fast = "true", Ratio = "0.5", Tags = { "a" }, Meta = { k = 1 }, Any = false,
      type = "SpecPing" }))
    assert.same({ type = "SpecPing", Seq = 7, Note = "12", Fast = true, Ratio = 0.5, Tags = { "a" },
                  Meta = { k = 1 }, Any = false }, m)
    assert.equal(-2, message.build("spec_a/SpecPing", { Seq = -2.7 }).Seq)
    assert.equal('{"k":1}', message.build("spec_a/SpecPing", { Note = { k = 1 } }).Note)
    assert.same({ type = "Empty" }, message.build("Empty", nil))
  end)

  it("refuses data that does not fit, saying why", function()
    local function why(data) return select(2, message.build("spec_a/SpecPing", data)) end
    assert.equal("EINCORRECT: unknown field 'Sq'", why({ Sq = 1 }))
    assert.equal("EINCORRECT: field Seq: expected integer, got boolean", why({ Seq = true }))
    assert.equal('EINCORRECT: field Fast: expected boolean, got string "yes"', why({ Fast = "yes" }))
    assert.equal("EINCORRECT: field Tags: expected list, got table", why({ Tags = { a = 1 } }))
    assert.equal("EINCORRECT: field Meta: expected table, got list", why({ Meta = { 1, 2 } }))
    assert.equal("EINCORRECT: field type: SpecPing expected, got Other", why({ type = "Other" }))
    assert.equal("EINCORRECT: expected a map of fields, got list", why({ 1, 2 }))
    assert.equal("EINCORRECT: expected a map of fields, got number", why(3))
    assert.equal("EUNKNOWN", select(3, message.build("Nope", {})))
  end)

  it("raises on a malformed definition", function()
    assert.has_error(function() message.define("bad name", {}) end)
    assert.has_error(function() message.define("x/", {}) end)
    assert.has_error(function() message.define("x/Y", { type = "string" }) end)
    assert.has_error(function() message.define("x/Y", { A = "float" }) end)
    assert.has_error(function() message.define("x/Y") end)
  end)
end)
