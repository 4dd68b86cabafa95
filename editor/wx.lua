---@meta
-- Editor types for wechat-lua bots: completion and checks of `wx.*` and of the message
-- table handlers receive, for the Lua language server (LuaLS). Never run by the host.
--
-- Point LuaLS at this file's directory (`"workspace.library": ["types"]` in .luarc.json, as
-- `wechat-lua new` writes it). It describes exactly the names the host defines; docs/lua-api.md
-- has the details.
--
-- API and store calls that can fail return `result, err`: on failure `nil, wx.Error`. Wrong
-- arguments are not `nil, err`: they raise an error at the calling line.

---@class wx
wx = {}

------------------------------------------------------------------------------------------
-- Message kinds
------------------------------------------------------------------------------------------

---A kind for `wx.on`: a MsgType, `event.<Event>` (lowercase), `event` for every event, `*`
---for every message, or `late_reply_failed` (see `wx.on`).
---@alias wx.Kind
---| "text"
---| "image"
---| "voice"
---| "video"
---| "shortvideo"
---| "location"
---| "link"
---| "miniprogrampage"
---| "file"
---| "event"
---| "event.subscribe"
---| "event.unsubscribe"
---| "event.scan"
---| "event.location"
---| "event.click"
---| "event.view"
---| "event.scancode_push"
---| "event.scancode_waitmsg"
---| "event.pic_sysphoto"
---| "event.pic_photo_or_album"
---| "event.pic_weixin"
---| "event.location_select"
---| "event.view_miniprogram"
---| "event.masssendjobfinish"
---| "event.templatesendjobfinish"
---| "event.publishjobfinish"
---| "event.subscribe_msg_popup_event"
---| "event.subscribe_msg_change_event"
---| "event.subscribe_msg_sent_event"
---| "event.kf_create_session"
---| "event.kf_close_session"
---| "event.kf_switch_session"
---| "*"
---| "late_reply_failed"
---| "component.authorized"
---| "component.unauthorized"

------------------------------------------------------------------------------------------
-- Inbound messages
------------------------------------------------------------------------------------------

---An inbound message. Short names first; then every element WeChat sends under its
---snake_case name (`FromUserName` → `from_user_name`), all as strings. Which fields are
---present depends on the kind.
---@class wx.Message
---@field type string MsgType, lowercase: "text", "image", ..., "event".
---@field event? string Event, lowercase ("subscribe", "click", ...); events only.
---@field from string FromUserName: the sender's OpenID.
---@field to string ToUserName: the account's original ID (gh_...).
---@field time integer CreateTime, Unix seconds.
---@field id? string MsgId (a string: it can exceed 2^53); not on events.
---@field content? string Content of a text message.
---@field key? string EventKey of an event (menu key, `qrscene_<scene>`, URL, ...).
---@field account string The account it came to: "default" at /wechat, else its [[accounts]] name.
---@field appid? string That account's AppID.
---@field to_user_name string ToUserName.
---@field from_user_name string FromUserName.
---@field create_time string CreateTime as sent.
---@field msg_type string MsgType as sent.
---@field msg_id? string MsgId (messages), or MsgID (MASSSENDJOBFINISH, TEMPLATESENDJOBFINISH).
---@field msg_data_id? string MsgDataId: set when the message comes from an article.
---@field idx? string Idx: the article's index in the push, with msg_data_id.
---@field bizmsgmenuid? string bizmsgmenuid: the option a user tapped in a menu message.
---@field pic_url? string PicUrl (image).
---@field media_id? string MediaId (image, voice, video, shortvideo).
---@field format? string Format of a voice message (amr, speex).
---@field recognition? string Recognition: speech-to-text of a voice message, when enabled.
---@field media_id16k? string MediaId16K: a 16 kHz copy of the voice.
---@field thumb_media_id? string ThumbMediaId (video, shortvideo, miniprogrampage).
---@field location_x? string Location_X: latitude (location).
---@field location_y? string Location_Y: longitude (location).
---@field scale? string Scale: map zoom (location).
---@field label? string Label: the place's description (location).
---@field title? string Title (link, file, miniprogrampage).
---@field description? string Description (link, file).
---@field url? string Url (link).
---@field app_id? string AppId of the mini program (miniprogrampage).
---@field page_path? string PagePath (miniprogrampage).
---@field thumb_url? string ThumbUrl (miniprogrampage).
---@field file_key? string FileKey (file).
---@field file_md5? string FileMd5 (file).
---@field file_total_len? string FileTotalLen in bytes (file).
---@field event_key? string EventKey as sent (also in `key`).
---@field ticket? string Ticket of a parametric QR code (subscribe with scene, SCAN).
---@field latitude? string Latitude (LOCATION event).
---@field longitude? string Longitude (LOCATION event).
---@field precision? string Precision in metres (LOCATION event).
---@field menu_id? string MenuId of the menu (VIEW, view_miniprogram).
---@field scan_code_info? wx.ScanCodeInfo ScanCodeInfo (scancode_push, scancode_waitmsg).
---@field send_pics_info? wx.SendPicsInfo SendPicsInfo (pic_sysphoto, pic_photo_or_album, pic_weixin).
---@field send_location_info? wx.SendLocationInfo SendLocationInfo (location_select).
---@field status? string Status of a mass or template send ("success", "err(30003)", ...).
---@field total_count? string TotalCount of a mass send.
---@field filter_count? string FilterCount: followers left after filtering.
---@field sent_count? string SentCount.
---@field error_count? string ErrorCount.
---@field copyright_check_result? wx.CopyrightCheckResult CopyrightCheckResult (MASSSENDJOBFINISH).
---@field article_url_result? wx.ArticleUrlResult ArticleUrlResult (MASSSENDJOBFINISH).
---@field publish_event_info? wx.PublishEventInfo PublishEventInfo (PUBLISHJOBFINISH).
---@field chosen_beacon? wx.Beacon ChosenBeacon (ShakearoundUserShake).
---@field around_beacons? wx.AroundBeacons AroundBeacons (ShakearoundUserShake).
---@field subscribe_msg_popup_event? wx.SubscribeMsgEvent SubscribeMsgPopupEvent.
---@field subscribe_msg_change_event? wx.SubscribeMsgEvent SubscribeMsgChangeEvent.
---@field subscribe_msg_sent_event? wx.SubscribeMsgEvent SubscribeMsgSentEvent.
---@field kf_account? string KfAccount (kf_create_session, kf_close_session).
---@field from_kf_account? string FromKfAccount (kf_switch_session).
---@field to_kf_account? string ToKfAccount (kf_switch_session).
---@field [string] any Any other element WeChat sends, under its snake_case name.

---@class wx.ScanCodeInfo
---@field scan_type string ScanType, e.g. "qrcode".
---@field scan_result string ScanResult: the scanned text.

---@class wx.SendPicsInfo
---@field count string Count of pictures.
---@field pic_list wx.Pic[] PicList (always a list, {} when empty).

---@class wx.Pic
---@field pic_md5_sum string PicMd5Sum.

---@class wx.SendLocationInfo
---@field location_x string Location_X: latitude.
---@field location_y string Location_Y: longitude.
---@field scale string Scale.
---@field label string Label.
---@field poiname string Poiname: the point of interest, may be "".

---@class wx.CopyrightCheckResult
---@field count string Count.
---@field result_list wx.CopyrightCheckItem[] ResultList (always a list, {} when empty).
---@field check_state string CheckState: 1 checking, 2 passed, 3 failed.

---@class wx.CopyrightCheckItem
---@field article_idx string ArticleIdx.
---@field user_declare_state string UserDeclareState.
---@field audit_state string AuditState.
---@field original_article_url string OriginalArticleUrl.
---@field original_article_type string OriginalArticleType.
---@field can_reprint string CanReprint.
---@field need_replace_content string NeedReplaceContent.
---@field need_show_reprint_source string NeedShowReprintSource.

---@class wx.ArticleUrlResult
---@field count string Count.
---@field result_list wx.ArticleUrlItem[] ResultList (always a list, {} when empty).

---@class wx.ArticleUrlItem
---@field article_idx string ArticleIdx.
---@field article_url string ArticleUrl.

---@class wx.PublishEventInfo
---@field publish_id string publish_id.
---@field publish_status string publish_status: 0 published, others failed.
---@field article_id? string article_id.
---@field article_detail? wx.PublishArticleDetail article_detail.
---@field fail_idx string[] fail_idx: indexes of the articles that failed (always a list, {} when none).

---@class wx.PublishArticleDetail
---@field count string count.
---@field item wx.PublishArticle[] item (always a list, {} when none).

---@class wx.PublishArticle
---@field idx string idx.
---@field article_url string article_url.

---@class wx.Beacon
---@field uuid string Uuid.
---@field major string Major.
---@field minor string Minor.
---@field distance string Distance in metres.

---@class wx.AroundBeacons
---@field around_beacon wx.Beacon[] AroundBeacon (always a list, {} when none).

---@class wx.SubscribeMsgEvent
---@field list wx.SubscribeMsgItem[] List (always a list, even of one; {} when none).

---@class wx.SubscribeMsgItem
---@field template_id string TemplateId.
---@field subscribe_status_string? string SubscribeStatusString: "accept" or "reject".
---@field popup_scene? string PopupScene (popup event).
---@field msg_id? string MsgID (sent event).
---@field error_code? string ErrorCode (sent event).
---@field error_status? string ErrorStatus (sent event).

------------------------------------------------------------------------------------------
-- Handlers and replies
------------------------------------------------------------------------------------------

---What a handler returns: nil (answer `success`, no reply), a string or number (a text
---reply), or a reply table from `wx.reply.*`.
---@alias wx.ReplyValue nil|string|number|wx.Reply

---@alias wx.Handler fun(msg: wx.Message): wx.ReplyValue

---What a `late_reply_failed` handler receives first: the user, and the reply and error
---(also passed as its second and third arguments).
---@class wx.LateReplyFailure
---@field openid string The user the late reply was for.
---@field reply wx.Reply The reply that could not be delivered, as `wx.reply.*` builds it.
---@field error wx.Error Why customer service refused it (e.g. 45015, 45047).

---Called when a reply that missed WeChat's 5-second deadline could not be delivered later
---as a customer-service message (refused for good: 45015 the user has not written within 48
---hours, 45047 quota used up). Handlers run in order until one returns a non-nil value;
---what they return is not sent.
---@alias wx.LateReplyFailedHandler fun(ev: wx.LateReplyFailure, reply: wx.Reply, err: wx.Error): any

---What a `component.authorized` / `component.unauthorized` handler receives: an account that
---authorized the open platform ([component]), changed what it grants, or withdrew.
---@class wx.AuthorizationEvent
---@field appid string The account (its messages arrive with `msg.account` = this appid).
---@field event "authorized"|"updateauthorized"|"unauthorized"
---@field func_info integer[] The permission sets (权限集) granted; empty when withdrawn.

---@alias wx.AuthorizationHandler fun(ev: wx.AuthorizationEvent): any

---Registers a handler for one kind of message, at the top level of a script. Handlers are
---tried in registration order; the first that matches answers. With a filter: on "text" a
---Lua pattern on the content (its captures follow `msg`), on events an exact EventKey.
---`late_reply_failed` handlers take no filter.
---@overload fun(kind: "late_reply_failed", handler: wx.LateReplyFailedHandler)
---@overload fun(kind: "component.authorized"|"component.unauthorized", handler: wx.AuthorizationHandler)
---@overload fun(kind: wx.Kind, handler: wx.Handler)
---@overload fun(kind: "text", pattern: string, handler: fun(msg: wx.Message, ...: string): wx.ReplyValue)
---@param kind wx.Kind
---@param filter string A Lua pattern ("text") or an EventKey (events).
---@param handler wx.Handler
function wx.on(kind, filter, handler) end

---What a `wx.on_start` function receives.
---@class wx.StartInfo
---@field generation integer 1 at process start, then one more per successful reload.

---Registers start-up work, at the top level of a script. It runs once per load of the
---script set (at process start and after each successful reload), in a state of its own,
---and may wait (wx.store, the WeChat API, wx.http), which the top level may not. An error is
---logged with file:line and does not stop the host.
---@param fn fun(info: wx.StartInfo)
function wx.on_start(fn) end

---@alias wx.Reply wx.TextReply|wx.ImageReply|wx.VoiceReply|wx.VideoReply|wx.MusicReply|wx.NewsReply|wx.TransferReply

---@class wx.TextReply
---@field type "text"
---@field content string

---@class wx.ImageReply
---@field type "image"
---@field media_id string

---@class wx.VoiceReply
---@field type "voice"
---@field media_id string

---@class wx.VideoReply
---@field type "video"
---@field media_id string
---@field title? string
---@field description? string

---@class wx.MusicReply
---@field type "music"
---@field thumb_media_id string
---@field title? string
---@field description? string
---@field music_url? string
---@field hq_music_url? string

---@class wx.Article
---@field title? string
---@field description? string
---@field pic_url? string
---@field url? string

---@class wx.NewsReply
---@field type "news"
---@field articles wx.Article[] 1 to 8; WeChat shows only the first when answering a user's message.

---@class wx.TransferReply
---@field type "transfer_customer_service"
---@field kf_account? string A given agent, or any free one.

---Passive reply constructors; each checks its reply at once, so a mistake is reported at
---the line that made it.
wx.reply = {}

---@param content string
---@return wx.TextReply
function wx.reply.text(content) end

---@param media_id string
---@return wx.ImageReply
function wx.reply.image(media_id) end

---@param media_id string
---@return wx.VoiceReply
function wx.reply.voice(media_id) end

---@param fields {media_id: string, title?: string, description?: string}
---@return wx.VideoReply
function wx.reply.video(fields) end

---@param fields {thumb_media_id: string, title?: string, description?: string, music_url?: string, hq_music_url?: string}
---@return wx.MusicReply
function wx.reply.music(fields) end

---@param articles wx.Article[] 1 to 8.
---@return wx.NewsReply
function wx.reply.news(articles) end

---Hands the conversation to customer service (多客服).
---@param kf_account? string
---@return wx.TransferReply
function wx.reply.transfer(kf_account) end

------------------------------------------------------------------------------------------
-- Logging, time and the store
------------------------------------------------------------------------------------------

---Script output into the host's log, tagged with file:line; arguments are joined as `print`
---does. `print` logs at info.
wx.log = {}

---@param ... any
function wx.log.debug(...) end

---@param ... any
function wx.log.info(...) end

---@param ... any
function wx.log.warn(...) end

---@param ... any
function wx.log.error(...) end

---Waits without holding up other messages (inside a handler; an error at the top level).
---@param seconds number 0 to 3600.
function wx.sleep(seconds) end

---The sender's session: a table kept in the store under the account and the user's OpenID,
---saved when the handler returns (not when it raises an error), expiring `session_ttl`
---(30 days) after the last save. An empty table deletes it. Values as in `wx.store`.
---@param msg wx.Message The message the handler received.
---@return table session
function wx.session(msg) end

---A value `wx.store` keeps (as JSON).
---@alias wx.StoreValue string|number|boolean|table

---State shared between messages, workers, instances, reloads and restarts (Lua globals are
---not). Keys are 1 to 512 bytes. A failing store returns `nil, {errcode = -2, kind = ...,
---errmsg = "store: ..."}`; `kind` is "unknown_outcome" when a write got no answer in time (it
---may have been applied: do not blindly retry an `incr`), "unavailable" or "error" when nothing
---was written.
wx.store = {}

---@param key string
---@return wx.StoreValue? value nil when missing or expired.
---@return wx.Error? err
function wx.store.get(key) end

---@param key string
---@param value wx.StoreValue? nil deletes the key.
---@param ttl? number Seconds until the key expires (positive).
---@return true? ok
---@return wx.Error? err
function wx.store.set(key, value, ttl) end

---Adds to an integer atomically (from 0 when missing) and returns the new value.
---@param key string
---@param by? integer Default 1.
---@return integer? value
---@return wx.Error? err
function wx.store.incr(key, by) end

---@param key string
---@return boolean? existed Whether the key existed.
---@return wx.Error? err
function wx.store.del(key) end

---The same functions on keys every account of the host shares (`wx.store` itself keeps the
---handling account's keys).
wx.store.global = {}

---@param key string
---@return wx.StoreValue? value nil when missing or expired.
---@return wx.Error? err
function wx.store.global.get(key) end

---@param key string
---@param value wx.StoreValue? nil deletes the key.
---@param ttl? number Seconds until the key expires (positive).
---@return true? ok
---@return wx.Error? err
function wx.store.global.set(key, value, ttl) end

---@param key string
---@param by? integer Default 1.
---@return integer? value
---@return wx.Error? err
function wx.store.global.incr(key, by) end

---@param key string
---@return boolean? existed
---@return wx.Error? err
function wx.store.global.del(key) end

---The API tables of another account of the host (`[[accounts]]`, or "default"), for jobs that
---act across accounts. An unknown name raises an error at the calling line.
---@param name string
---@return { kf: table, mass: table, template: table, subscribe: table, user: table, tags: table, menu: table, media: table, material: table, qrcode: table, oauth: table, jssdk: table, api: table }
function wx.account(name) end

------------------------------------------------------------------------------------------
-- The outside world: wx.http, wx.json, wx.crypto, wx.base64, wx.url
------------------------------------------------------------------------------------------

---A transport failure of `wx.http` (any HTTP status is a response, not an error).
---@class wx.HttpError
---@field kind "timeout"|"connect"|"dns"|"tls"|"too_large"|"denied"|"redirect"|"invalid_url"
---@field message string Readable; a refusal names the `[http]` rule or address class.
---@field url string The URL asked for, without its query string.

---A response, whatever its status.
---@class wx.HttpResponse
---@field status integer
---@field headers table<string, string> Lower-case names; a repeated header joined with ", ".
---@field body string The body bytes, as they came.
local HttpResponse = {}

---Decodes the body as JSON (like `wx.json.decode`); raises an error at the calling line when it
---is not JSON.
---@return any
function HttpResponse:json() end

---@class wx.HttpRequest
---@field url string http:// or https:// only.
---@field method? string Default "GET".
---@field query? table<string, string|number|boolean> Added to the URL, keys sorted.
---@field headers? table<string, string|number> No CR/LF; content-length, transfer-encoding, host and connection are the host's.
---@field body? string Any bytes. One of body, json and form.
---@field json? any Sent as JSON with content-type application/json.
---@field form? table<string, string|number|boolean> Sent as application/x-www-form-urlencoded.
---@field timeout? number Seconds, default 10, at most 60 (waiting for a slot included).
---@field max_bytes? integer Body cap, default 8 MiB, at most 64 MiB; over it: kind "too_large".

---Outbound HTTP (reqwest underneath). Public addresses only unless `[http] allow` lists the
---host; redirects (at most 5) are checked again; waiting suspends only this handler.
wx.http = {}

---@param request wx.HttpRequest
---@return wx.HttpResponse? resp
---@return wx.HttpError? err
function wx.http.request(request) end

---@param url string
---@param options? wx.HttpRequest Without url and method.
---@return wx.HttpResponse? resp
---@return wx.HttpError? err
function wx.http.get(url, options) end

---@param url string
---@param body? string|table A string is sent as is; a table as JSON.
---@param options? wx.HttpRequest Without url, method, body, json and form.
---@return wx.HttpResponse? resp
---@return wx.HttpError? err
function wx.http.post(url, body, options) end

---JSON. Integers stay integers and floats floats; an empty table encodes as `{}` unless marked
---with `wx.json.array`; a table with keys 1..n is an array, one with string keys an object;
---sparse or mixed tables, NaN/inf, cycles and strings that are not UTF-8 raise an error naming
---where in the value the problem is.
wx.json = {}

---The JSON `null`, kept in decoded values (so array lengths survive) and encoded as `null`.
---@type lightuserdata
wx.json.null = nil

---@param value any
---@param options? {pretty?: boolean}
---@return string
function wx.json.encode(value, options) end

---@param text string
---@return any? value Arrays carry the `wx.json.array` mark, so they encode back as arrays.
---@return string? err Not JSON: what is wrong and at which byte.
function wx.json.decode(text) end

---Marks a table (a new one when omitted) as a JSON array, so `{}` encodes as `[]`.
---@param t? table
---@return table t
function wx.json.array(t) end

---Marks a table (a new one when omitted) as a JSON object (number keys written as names).
---@param t? table
---@return table t
function wx.json.object(t) end

---Digests and HMACs of bytes, as lower-case hex.
wx.crypto = {}

---@param data string
---@return string hex
function wx.crypto.sha1(data) end

---@param data string
---@return string hex
function wx.crypto.sha256(data) end

---@param data string
---@return string hex
function wx.crypto.md5(data) end

---@param key string
---@param data string
---@return string hex
function wx.crypto.hmac_sha256(key, data) end

---@param key string
---@param data string
---@return string hex
function wx.crypto.hmac_sha1(key, data) end

---`n` random bytes (1 to 1024) from the OS generator, as 2n hex digits.
---@param n integer
---@return string hex
function wx.crypto.random_hex(n) end

---Base64, standard alphabet, or URL-safe with `{url = true}`.
wx.base64 = {}

---@param data string
---@param options? {url?: boolean}
---@return string
function wx.base64.encode(data, options) end

---@param text string Whitespace ignored; with `url = true` padding is optional.
---@param options? {url?: boolean}
---@return string? bytes
---@return string? err
function wx.base64.decode(text, options) end

---Percent-encoding and query strings.
wx.url = {}

---Percent-encodes everything but letters, digits and `-._~`.
---@param s string
---@return string
function wx.url.encode(s) end

---Decodes `%XX` and `+` (as a space).
---@param s string
---@return string
function wx.url.decode(s) end

---`a=1&b=x+y`: keys sorted, so signatures over it are stable.
---@param params table<string, string|number|boolean>
---@return string
function wx.url.query(params) end

------------------------------------------------------------------------------------------
-- Web pages: wx.route, wx.web
------------------------------------------------------------------------------------------

---A web request, as a `wx.route` handler gets it.
---@class wx.Request
---@field method string "GET", "POST", ... as sent.
---@field path string The path, percent-decoded.
---@field url string The path and query as sent, for links back to this page.
---@field page_url? string The full URL the browser shows ([oauth] public_url .. url), what wx.jssdk.config signs; nil without [oauth].
---@field query table<string, string> Query parameters; a repeated key gives its last value.
---@field query_all table<string, string[]> Every value of every query key.
---@field headers table<string, string> Names in lower case; repeated values joined with ", ".
---@field cookies table<string, string> Cookies by name.
---@field body string The body (at most 1 MiB).
---@field params table<string, string> The path's `:name` and `*name` captures.
---@field ip? string The client: the peer, or X-Forwarded-For from a `trusted_proxies` peer.
---@field openid? string The signed-in visitor (sign-in with WeChat).
---@field unionid? string The signed-in visitor's UnionID, when known.
local Request = {}

---The body decoded as JSON.
---@return any? value
---@return string? err
function Request:json() end

---The body read as application/x-www-form-urlencoded (last value of a repeated key).
---@return table<string, string>? form
---@return string? err
function Request:form() end

---What a route handler returns besides an HTML string.
---@class wx.Response
---@field status? integer 200 to 599 (default 200).
---@field headers? table<string, string|number|string[]> A list for a repeated header (Set-Cookie).
---@field body? string Default "", sent as text/html unless Content-Type says otherwise.
---@field json? any Encoded as wx.json.encode does, sent as application/json (instead of body).

---Serves a web page: `fn(req)` answers requests to `path` (at load time only). `:name` captures
---a segment, a last `*name` the rest. The host's paths (/wechat, /healthz, /metrics, /readyz,
---/oauth/*, /public/*) cannot be taken.
---@param method "GET"|"POST"|"PUT"|"DELETE"|"PATCH"|"*"
---@param path string
---@param handler fun(req: wx.Request): string|wx.Response
function wx.route(method, path, handler) end

---Helpers for web pages.
wx.web = {}

---`s` with & < > " ' escaped for HTML text and quoted attributes.
---@param s string|number
---@return string
function wx.web.escape(s) end

---A redirect answer.
---@param url string
---@param status? 301|302|303|307|308 Default 302.
---@return wx.Response
function wx.web.redirect(url, status) end

---nil when `req.openid` is set; otherwise a redirect to /oauth/login?next=<req.url>.
---@param req wx.Request
---@return wx.Response?
function wx.web.require_login(req) end

------------------------------------------------------------------------------------------
-- WeChat API
------------------------------------------------------------------------------------------

---A failure, the `err` of `nil, err`: WeChat's errcode and errmsg, or a host code: -2 network
---error (or store failure), -3 timeout, -4 answer not JSON, -5 no appid/appsecret
---configured, -6 HTTP error status.
---@class wx.Error
---@field errcode integer
---@field errmsg string
---@field kind? string For `wx.store`: "unknown_outcome" (a write got no answer in time and may have been applied), "unavailable" or "error" (nothing was written).
---@field retry_after? integer Seconds to wait, when WeChat says to retry later (45066).
---@field queued? boolean true when a transient failure (busy, rate limit, network) of `wx.kf.send`, `wx.template.send`, `wx.mass.send` or `wx.subscribe.send` was kept in the host's outbox: the host retries it, so do not send it again.
---@field kind? "unknown_outcome" Set when the request went out and no answer came: the call may have taken effect (a customer-service message may have arrived; it is not sent again).

---A customer-service message: a string (text), a reply table (`wx.reply.text/image/voice/
---video/music/news`), or one of the customer-service types.
---@alias wx.KfMessage string|wx.TextReply|wx.ImageReply|wx.VoiceReply|wx.KfVideo|wx.KfMusic|wx.KfNews|wx.KfMpNews|wx.KfMpNewsArticle|wx.KfMsgMenu|wx.KfWxCard|wx.KfMiniProgramPage

---@class wx.KfVideo
---@field type "video"
---@field media_id string
---@field thumb_media_id string Required for customer-service video.
---@field title? string
---@field description? string

---@class wx.KfMusic
---@field type "music"
---@field music_url string Also accepted as `musicurl`.
---@field hq_music_url? string Defaults to music_url (also `hqmusicurl`).
---@field thumb_media_id string
---@field title? string
---@field description? string

---@class wx.KfArticle
---@field title string
---@field description? string
---@field url? string
---@field pic_url? string Sent as `picurl`.

---@class wx.KfNews
---@field type "news"
---@field articles wx.KfArticle[] One article.

---@class wx.KfMpNews
---@field type "mpnews"
---@field media_id string A news material.

---@class wx.KfMpNewsArticle
---@field type "mpnewsarticle"
---@field article_id string A published article.

---@class wx.KfMsgMenu
---@field type "msgmenu"
---@field head_content string
---@field list {id: string|integer, content: string}[] The tap comes back as a text message with `msg.bizmsgmenuid`.
---@field tail_content string

---@class wx.KfWxCard
---@field type "wxcard"
---@field card_id string

---@class wx.KfMiniProgramPage
---@field type "miniprogrampage"
---@field title string
---@field appid string
---@field pagepath string
---@field thumb_media_id string

---Customer-service messages (客服消息): reply later or more than once, within 48 hours of
---the user's last message.
wx.kf = {}

---Sends a customer-service message, at most once. A definite transient failure is kept in the
---outbox and retried by the host (`err.queued`); a send whose answer was lost is not sent
---again (`err.kind == "unknown_outcome"`).
---@param openid string
---@param message wx.KfMessage A string is a text message.
---@param kf_account? string Send as this agent ("account@id").
---@return true? ok
---@return wx.Error? err
function wx.kf.send(openid, message, kf_account) end

---Shows or hides "typing..." to the user.
---@param openid string
---@param on boolean
---@return true? ok
---@return wx.Error? err
function wx.kf.typing(openid, on) end

---@class wx.KfWindow
---@field open boolean Whether a customer-service message can reach the user now.
---@field remaining integer Sends left across the open windows (0 when closed).
---@field closes_at? integer Unix seconds when the last open window closes; nil when closed.

---The customer-service window as the host has seen the user's messages and its own sends,
---without asking WeChat.
---@param openid string
---@return wx.KfWindow
function wx.kf.window(openid) end

---A mass message: a string (text), or a table whose `type` names it.
---@alias wx.MassMessage string|wx.TextReply|wx.MassMedia|wx.MassImage|wx.MassWxCard

---@class wx.MassMedia
---@field type "mpnews"|"voice"|"mpvideo"
---@field media_id string

---@class wx.MassImage
---@field type "image"
---@field media_id? string One image (or media_ids).
---@field media_ids? string[] Up to 8 images.
---@field recommend? string
---@field need_open_comment? integer 1 to open comments.
---@field only_fans_can_comment? integer 1 to let only followers comment.

---@class wx.MassWxCard
---@field type "wxcard"
---@field card_id string

---Mass sending (群发).
wx.mass = {}

---@class wx.MassSendArgs
---@field to {all: true}|{tag_id: integer}|string[] Everyone, followers with a tag (sendall), or a list of OpenIDs (split by 10000).
---@field message wx.MassMessage
---@field send_ignore_reprint? boolean Send even when an article is judged a reprint.
---@field clientmsgid? string At most 64 bytes; makes the send idempotent (generated when omitted).

---@class wx.MassSent
---@field msg_id integer
---@field msg_data_id? integer Set for mpnews sends.
---@field clientmsgid string The clientmsgid this call used.
---@field duplicate boolean true when the clientmsgid was used before and this is the original send.

---@class wx.MassSendResult: wx.MassSent
---@field sends? wx.MassSent[] For an OpenID list: every call (one unless the list was split).

---The outcome arrives later as `event.masssendjobfinish`.
---@param args wx.MassSendArgs
---@return wx.MassSendResult? result
---@return wx.Error? err
function wx.mass.send(args) end

---Sends a mass message to one user to preview it.
---@param openid string
---@param message wx.MassMessage
---@return table? response WeChat's answer (msg_id).
---@return wx.Error? err
function wx.mass.preview(openid, message) end

---Deletes a sent mass message (an article of it, with article_idx).
---@param msg_id integer
---@param article_idx? integer 1-based; 0 or omitted deletes all articles.
---@return true? ok
---@return wx.Error? err
function wx.mass.delete(msg_id, article_idx) end

---@param msg_id integer
---@return {msg_id: integer, msg_status: string}? status msg_status: "SEND_SUCCESS", "SENDING", "SEND_FAIL", "DELETE".
---@return wx.Error? err
function wx.mass.status(msg_id) end

---@class wx.MassSpeed
---@field speed integer 0 (fastest) to 4 (slowest).
---@field realspeed integer What the level means, in 万 messages a minute (80, 60, 45, 30, 10).

---The speed mass messages go out at.
---@return wx.MassSpeed? speed
---@return wx.Error? err
function wx.mass.speed() end

---Sets the speed mass messages go out at.
---@param speed integer 0 (fastest, 80万/minute) to 4 (slowest, 10万/minute).
---@return true? ok
---@return wx.Error? err
function wx.mass.set_speed(speed) end

---Template messages (模板消息).
wx.template = {}

---@class wx.TemplateSendArgs
---@field to string OpenID (also accepted as `touser`).
---@field template_id string
---@field url? string Opened on tap.
---@field miniprogram? {appid: string, pagepath?: string} Opened on tap (wins over url).
---@field data table<string, string|number|{value: string|number}> The template's keywords (WeChat shows no first/remark lines or colours since 2023-05).
---@field client_msg_id? string Makes the send idempotent: one message per openid and key within 10 minutes (generated when omitted).

---Sends a template message; the outcome arrives later as `event.templatesendjobfinish`. A
---transient failure, a lost answer included, is kept in the outbox and retried with the same
---`client_msg_id` by the host (`err.queued`).
---@param args wx.TemplateSendArgs
---@return integer? msgid
---@return wx.Error? err
function wx.template.send(args) end

---@class wx.Template
---@field template_id string
---@field title string
---@field primary_industry string
---@field deputy_industry string
---@field content string
---@field example string

---The account's templates.
---@return wx.Template[]? templates
---@return wx.Error? err
function wx.template.list() end

---Adds a template from the template library to the account (at most 25: errcode 45026).
---@param template_id_short string The library template's number, e.g. "OPENTM200565259".
---@param keyword_name_list? string[] Keywords to use, for newer library templates.
---@return string? template_id The account's template_id.
---@return wx.Error? err
function wx.template.add(template_id_short, keyword_name_list) end

---Deletes one of the account's templates (errcode 40037 when it has no such template).
---@param template_id string
---@return true? ok
---@return wx.Error? err
function wx.template.delete(template_id) end

---@class wx.TemplateIndustry
---@field first_class string
---@field second_class string

---The account's two industries.
---@return {primary_industry: wx.TemplateIndustry, secondary_industry: wx.TemplateIndustry}? industries
---@return wx.Error? err
function wx.template.get_industry() end

---Sets the account's two industries (WeChat allows a change once a month).
---@param industry_id1 string|integer The main industry's number in WeChat's industry table.
---@param industry_id2 string|integer The second industry's number.
---@return true? ok
---@return wx.Error? err
function wx.template.set_industry(industry_id1, industry_id2) end

---Subscription notifications (订阅通知).
wx.subscribe = {}

---@class wx.SubscribeSendArgs
---@field to string OpenID (also accepted as `touser`).
---@field template_id string The priTmplId of one of the account's templates.
---@field data table<string, string|number|{value: string|number}> The template's keys (thing1, time2, ...).
---@field page? string Web page opened on tap.
---@field miniprogram? {appid: string, pagepath?: string} Opened on tap (wins over page).

---Sends a subscription notification to a user who subscribed (43101 otherwise). A transient
---failure is kept in the outbox and retried by the host (`err.queued`).
---@param args wx.SubscribeSendArgs
---@return true? ok
---@return wx.Error? err
function wx.subscribe.send(args) end

---@class wx.SubscribeTemplate
---@field priTmplId string
---@field title string
---@field content string
---@field example string
---@field type integer 2 one-off, 3 long-term.

---The account's subscription templates.
---@return wx.SubscribeTemplate[]? templates
---@return wx.Error? err
function wx.subscribe.templates() end

---Adds library template `tid` with 2 to 5 keyword ids, in order.
---@param tid string
---@param kid_list integer[]
---@param scene_desc string Up to 15 characters.
---@return string? pri_tmpl_id
---@return wx.Error? err
function wx.subscribe.add(tid, kid_list, scene_desc) end

---@param pri_tmpl_id string
---@return true? ok
---@return wx.Error? err
function wx.subscribe.delete(pri_tmpl_id) end

---The account's categories.
---@return {id: integer, name: string}[]? categories
---@return wx.Error? err
function wx.subscribe.categories() end

---网页授权: sign-in of web pages opened in WeChat.
wx.oauth = {}

---The sign-in URL to send a visitor to; WeChat redirects to `redirect_uri` with
---`?code=…&state=…`. Waits for nothing. `nil, err` without appid/appsecret.
---@param args {redirect_uri: string, scope?: "snsapi_base"|"snsapi_userinfo", state?: string}
---@return string? url
---@return wx.Error? err
function wx.oauth.url(args) end

---@class wx.OauthToken
---@field openid string
---@field unionid? string When the account is bound to an open platform account.
---@field scope string
---@field access_token string The visitor's, for wx.oauth.userinfo.
---@field refresh_token string
---@field expires_in integer

---The visitor behind a redirect's `code` (each works once: 40163 when used, 40029 unknown).
---@param code string
---@return wx.OauthToken? token
---@return wx.Error? err
function wx.oauth.exchange(code) end

---The profile of a visitor who granted snsapi_userinfo.
---@param access_token string From wx.oauth.exchange.
---@param openid string
---@param lang? string "zh_CN" (default), "zh_TW" or "en".
---@return {openid: string, nickname: string, headimgurl: string, sex: integer, province: string, city: string, country: string, privilege: string[], unionid?: string}? info
---@return wx.Error? err
function wx.oauth.userinfo(access_token, openid, lang) end

---The JS-SDK.
wx.jssdk = {}

---@class wx.JsSdkConfig
---@field appId string
---@field timestamp integer
---@field nonceStr string
---@field signature string
---@field jsApiList string[]
---@field openTagList string[]
---@field debug boolean

---A signed config for the page at `url` (its absolute URL; the #fragment is not signed),
---ready for the page's `wx.config(...)`.
---@param url string
---@param options? {apis?: string[], open_tags?: string[], debug?: boolean}
---@return wx.JsSdkConfig? config
---@return wx.Error? err
function wx.jssdk.config(url, options) end

---Followers (用户管理).
wx.user = {}

---@class wx.UserInfo
---@field subscribe integer 1 when following, 0 otherwise (then little else is set).
---@field openid string
---@field language? string
---@field subscribe_time? integer
---@field unionid? string
---@field remark? string
---@field groupid? integer
---@field tagid_list? integer[]
---@field subscribe_scene? string e.g. "ADD_SCENE_QR_CODE".
---@field qr_scene? integer
---@field qr_scene_str? string

---@param openid string
---@param lang? string "zh_CN" (default), "zh_TW", "en".
---@return wx.UserInfo? info
---@return wx.Error? err
function wx.user.info(openid, lang) end

---Profiles of many followers, in the order asked (sent 100 OpenIDs per call).
---@param openids string[]
---@param lang? string "zh_CN" (default), "zh_TW", "en".
---@return wx.UserInfo[]? infos
---@return wx.Error? err
function wx.user.batch_info(openids, lang) end

---@class wx.FollowerPage
---@field total integer All followers.
---@field openids string[] This page: at most 10000.
---@field next_openid string Pass it for the next page.

---One page of follower OpenIDs, from next_openid (the start when omitted).
---@param next_openid? string
---@return wx.FollowerPage? page
---@return wx.Error? err
function wx.user.list(next_openid) end

---User tags (标签管理).
wx.tags = {}

---@class wx.Tag
---@field id integer
---@field name string
---@field count integer Followers with the tag.

---@param name string
---@return integer? id The new tag's id.
---@return wx.Error? err
function wx.tags.create(name) end

---@return wx.Tag[]? tags
---@return wx.Error? err
function wx.tags.list() end

---@param id integer
---@param name string
---@return true? ok
---@return wx.Error? err
function wx.tags.update(id, name) end

---@param id integer
---@return true? ok
---@return wx.Error? err
function wx.tags.delete(id) end

---Tags followers (sent 50 OpenIDs per call).
---@param tag_id integer
---@param openids string[]
---@return true? ok
---@return wx.Error? err
function wx.tags.tag(tag_id, openids) end

---Removes a tag from followers.
---@param tag_id integer
---@param openids string[]
---@return true? ok
---@return wx.Error? err
function wx.tags.untag(tag_id, openids) end

---The tag ids of one follower.
---@param openid string
---@return integer[]? tag_ids
---@return wx.Error? err
function wx.tags.of(openid) end

---The custom menu (自定义菜单).
wx.menu = {}

---@class wx.MenuButton
---@field type? "click"|"view"|"miniprogram"|"scancode_push"|"scancode_waitmsg"|"pic_sysphoto"|"pic_photo_or_album"|"pic_weixin"|"location_select"|"media_id"|"article_id"|"article_view_limited"
---@field name string
---@field key? string For click and the scancode/pic/location types: the EventKey.
---@field url? string For view (and miniprogram's fallback).
---@field appid? string For miniprogram.
---@field pagepath? string For miniprogram.
---@field media_id? string
---@field article_id? string
---@field sub_button? wx.MenuButton[] Up to 5; a button with sub buttons has no type.

---@param menu {button: wx.MenuButton[]}|wx.MenuButton[] The menu (up to 3 buttons), or just its buttons.
---@return true? ok
---@return wx.Error? err
function wx.menu.create(menu) end

---@return {menu: {button: wx.MenuButton[]}, conditionalmenu?: table[]}? menu As WeChat returns it (errcode 46003 when there is none).
---@return wx.Error? err
function wx.menu.get() end

---Deletes the menu (conditional menus too).
---@return true? ok
---@return wx.Error? err
function wx.menu.delete() end

---Temporary media (临时素材, kept 3 days).
wx.media = {}

---@class wx.Media
---@field media_id string
---@field type "image"|"voice"|"video"|"thumb"
---@field created_at integer Unix seconds.

---Uploads a temporary media file. WeChat infers the format from the file name's extension
---(default media.jpg, media.amr, media.mp4 or thumb.jpg by type).
---@param type "image"|"voice"|"video"|"thumb"
---@param bytes string The file's contents (any bytes).
---@param filename? string
---@return wx.Media? media
---@return wx.Error? err
function wx.media.upload(type, bytes, filename) end

---A downloaded file.
---@class wx.MediaFile
---@field bytes string The file's content, exactly as sent.
---@field content_type? string e.g. "image/jpeg".
---@field filename? string

---Downloads a temporary media file, e.g. the picture or voice a user sent (`msg.media_id`).
---A video comes back as `{video_url = ...}` instead.
---@param media_id string
---@return wx.MediaFile|{video_url: string}? file
---@return wx.Error? err
function wx.media.get(media_id) end

---Uploads an image for use inside article content (jpg or png under 1 MB; 40005 or 40009
---otherwise).
---@param bytes string The image's contents.
---@param filename? string Default "image.jpg".
---@return string? url
---@return wx.Error? err
function wx.media.uploadimg(bytes, filename) end

---Permanent material (永久素材): kept until deleted.
wx.material = {}

---@class wx.MaterialOptions
---@field filename? string WeChat infers the format from its extension.
---@field title? string Required for a video (and only for a video).
---@field introduction? string A video's description.

---Adds a file to the material library.
---@param type "image"|"voice"|"video"|"thumb"
---@param bytes string The file's contents.
---@param options? wx.MaterialOptions
---@return {media_id: string, url?: string}? material `url` for images.
---@return wx.Error? err
function wx.material.add(type, bytes, options) end

---A material: a file, a video's description, or a news material's articles.
---@param media_id string
---@return wx.MediaFile|{title: string, description: string, down_url: string}|{news_item: table[]}? material
---@return wx.Error? err
function wx.material.get(media_id) end

---@param media_id string
---@return true? ok
---@return wx.Error? err
function wx.material.delete(media_id) end

---@return {image_count: integer, voice_count: integer, video_count: integer, news_count: integer}? counts
---@return wx.Error? err
function wx.material.count() end

---@class wx.MaterialItem
---@field media_id string
---@field name? string
---@field url? string
---@field update_time integer
---@field content? {news_item: table[]} For news.

---One page of the library, newest first.
---@param type "image"|"video"|"voice"|"news"
---@param offset? integer From 0 (default 0).
---@param count? integer 1 to 20 (default 20).
---@return {total_count: integer, item_count: integer, item: wx.MaterialItem[]}? page
---@return wx.Error? err
function wx.material.list(type, offset, count) end

---Parametric QR codes (带参数二维码).
wx.qrcode = {}

---@class wx.QrcodeArgs
---@field scene integer|string A positive integer or 1 to 64 characters; arrives as EventKey `qrscene_<scene>` (subscribe) or `<scene>` (scan).
---@field expire_seconds? integer Temporary code valid this long (at most 2592000); permanent when omitted.

---@class wx.Qrcode
---@field ticket string
---@field url string The code's content, to render yourself.
---@field expire_seconds? integer nil for a permanent code.
---@field image_url string The code's image.

---@param args wx.QrcodeArgs
---@return wx.Qrcode? qrcode
---@return wx.Error? err
function wx.qrcode.create(args) end

---Any other endpoint: the access_token is added, errcode is turned into `nil, err`. Only
---paths on the API host (starting with "/", no query string) are allowed.
wx.api = {}

---@param path string e.g. "/cgi-bin/get_current_selfmenu_info"
---@param query? table<string, string|number|boolean>
---@return table? response WeChat's JSON.
---@return wx.Error? err
function wx.api.get(path, query) end

---@param path string e.g. "/datacube/getusersummary"
---@param body? table Sent as JSON (`{}` when omitted); tables with keys 1..n become arrays.
---@return table? response WeChat's JSON.
---@return wx.Error? err
function wx.api.post(path, body) end
