-- A small shop: the menu's "My orders" button opens /orders, a page that signs the visitor in
-- with WeChat (网页授权) and lists their orders; a button on it asks for a notification when
-- an order ships (<wx-open-subscribe>, set up with a JS-SDK config), and the staff's text
-- "order 42 shipped" sends that notification (订阅通知).
--
-- Without an account, in a terminal and a browser:
--   wechat-lua chat --web --scripts examples/shop --menu examples/shop/menu.toml
-- then type "buy tea", open the printed address's /orders, and type "order 42 shipped".
-- Serving for real needs [oauth] in wechat-lua.toml (see wechat-lua.toml beside this file).

-- 订单发货通知 from the subscription template library (公共模板库): its id and the keyword ids
-- this shop shows, in order. Adding it gives the account its own template id (priTmplId),
-- kept in the store; its keys are then thing1, thing2 as the template's content names them.
local SHIPPED_TID = "1001"
local SHIPPED_KIDS = { 1, 2 }

-- Who may mark orders shipped: your staff's openids.
local STAFF = { o_chat_user = true, o_shop_staff = true }

-- The account's template id for "order shipped", added from the library the first time.
local function shipped_template()
  local id = wx.store.get("shop:shipped_template")
  if id then
    return id
  end
  local added, err = wx.subscribe.add(SHIPPED_TID, SHIPPED_KIDS, "订单发货")
  if not added then
    return nil, err
  end
  wx.store.set("shop:shipped_template", added)
  return added
end

-- "buy ITEM": a new order for whoever wrote, listed on their /orders page.
wx.on("text", "^buy%s+(.+)$", function(msg, item)
  local id = tostring(wx.store.incr("shop:order_seq") + 41)
  wx.store.set("order:" .. id, { id = id, item = item, openid = msg.from, status = "paid" })
  local mine = wx.store.get("orders:" .. msg.from) or {}
  mine[#mine + 1] = id
  wx.store.set("orders:" .. msg.from, mine)
  return "Order " .. id .. " placed: " .. item .. ". See it under My orders."
end)

-- "order 42 shipped": the order's owner gets a notification, if they asked for one.
wx.on("text", "^order%s+(%d+)%s+shipped$", function(msg, id)
  if not STAFF[msg.from] then
    return "Only staff can mark orders shipped."
  end
  local order = wx.store.get("order:" .. id)
  if not order then
    return "No order " .. id .. "."
  end
  order.status = "shipped"
  wx.store.set("order:" .. id, order)
  local template, err = shipped_template()
  if not template then
    return "Order " .. id .. " shipped; no notification (template: " .. err.errcode .. ")."
  end
  local ok
  ok, err = wx.subscribe.send {
    to = order.openid,
    template_id = template,
    page = "https://shop.example/orders",
    data = { thing1 = "订单 " .. id, thing2 = "已发货" },
  }
  if not ok then
    -- 43101: the customer did not ask to be told (or turned it off).
    return "Order " .. id .. " shipped; not notified (" .. err.errcode .. ")."
  end
  return "Order " .. id .. " shipped; " .. order.openid .. " notified."
end)

wx.on("text", function()
  return "Try: buy tea — then open My orders."
end)

wx.route("GET", "/", function()
  return wx.web.redirect("/orders")
end)

-- The JS-SDK config as a JSON script element the page reads: "</" cannot end the element.
local function config_json(cfg)
  return (wx.json.encode(cfg):gsub("</", "<\\/"))
end

wx.route("GET", "/orders", function(req)
  local login = wx.web.require_login(req)
  if login then
    return login
  end
  local rows = {}
  for _, id in ipairs(wx.store.get("orders:" .. req.openid) or {}) do
    local order = wx.store.get("order:" .. id)
    if order then
      rows[#rows + 1] = string.format('<li class="order">#%s %s <em>%s</em></li>',
        wx.web.escape(order.id), wx.web.escape(order.item), wx.web.escape(order.status))
    end
  end
  local list = #rows > 0 and ("<ul>" .. table.concat(rows, "\n") .. "</ul>")
    or "<p>No orders yet: send the account “buy tea”.</p>"

  -- The JS-SDK is signed for the URL the browser shows (req.page_url: [oauth] public_url and
  -- this path); the template id names what the subscribe button asks for.
  local jssdk, template = "", nil
  if req.page_url then
    local cfg, err = wx.jssdk.config(req.page_url, {
      apis = { "updateAppMessageShareData" },
      open_tags = { "wx-open-subscribe" },
    })
    if cfg then
      jssdk = '<script id="jssdk-config" type="application/json">' .. config_json(cfg) .. "</script>"
    else
      wx.log.warn("no JS-SDK config: " .. tostring(err.errmsg))
    end
    template = shipped_template()
  end
  local subscribe = template and string.format([[
<wx-open-subscribe id="subscribe" template="%s">
  <template><button>Tell me when my order ships</button></template>
</wx-open-subscribe>]], wx.web.escape(template)) or ""

  return [[<!doctype html>
<html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>My orders</title></head>
<body>
<h1>My orders</h1>
<p id="visitor">Signed in as ]] .. wx.web.escape(req.openid) .. [[</p>
]] .. list .. "\n" .. subscribe .. "\n" .. jssdk .. [[

<script>
  function jssdkReady() {
    var element = document.getElementById("jssdk-config");
    if (element && window.wx) { wx.config(JSON.parse(element.textContent)); }
  }
</script>
<script async src="https://res.wx.qq.com/open/js/jweixin-1.6.0.js" onload="jssdkReady()"></script>
</body></html>
]]
end)
