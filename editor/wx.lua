---@meta
-- Editor types for wechat-lua bots: completion and checks of `wx.*` and of the message
-- table handlers receive, for the Lua language server (LuaLS). Never run by the host.
--
-- Point LuaLS at this file's directory (`"workspace.library": ["types"]` in .luarc.json, as
-- `wechat-lua new` writes it). Families marked "planned" describe API bindings being built:
-- `wechat-lua check` warns about any name the running host does not define yet.
--
-- API calls that can fail return `result, err`: on failure `nil, wx.Error`.

---@class wx
wx = {}

------------------------------------------------------------------------------------------
-- Message kinds
------------------------------------------------------------------------------------------

---A kind for `wx.on`: a MsgType, `event.<Event>` (lowercase), `event` for every event, or
---`*` for every message.
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
---@field pic_list wx.Pic[] PicList.

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
---@field result_list wx.CopyrightCheckItem[] ResultList.
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
---@field result_list wx.ArticleUrlItem[] ResultList.

---@class wx.ArticleUrlItem
---@field article_idx string ArticleIdx.
---@field article_url string ArticleUrl.

---@class wx.PublishEventInfo
---@field publish_id string publish_id.
---@field publish_status string publish_status: 0 published, others failed.
---@field article_id? string article_id.
---@field article_detail? wx.PublishArticleDetail article_detail.

---@class wx.PublishArticleDetail
---@field count string count.
---@field item wx.PublishArticle[] item.

---@class wx.PublishArticle
---@field idx string idx.
---@field article_url string article_url.

---@class wx.SubscribeMsgEvent
---@field list wx.SubscribeMsgItem[] List (always a list, even of one).

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

---Registers a handler for one kind of message, at the top level of a script. Handlers are
---tried in registration order; the first that matches answers. With a filter: on "text" a
---Lua pattern on the content (its captures follow `msg`), on events an exact EventKey.
---@overload fun(kind: wx.Kind, handler: wx.Handler)
---@overload fun(kind: "text", pattern: string, handler: fun(msg: wx.Message, ...: string): wx.ReplyValue)
---@param kind wx.Kind
---@param filter string A Lua pattern ("text") or an EventKey (events).
---@param handler wx.Handler
function wx.on(kind, filter, handler) end

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

---@param articles wx.Article[]
---@return wx.NewsReply
function wx.reply.news(articles) end

---Hands the conversation to customer service (多客服).
---@param kf_account? string
---@return wx.TransferReply
function wx.reply.transfer(kf_account) end

------------------------------------------------------------------------------------------
-- Logging and time
------------------------------------------------------------------------------------------

---Script output into the host's log, tagged with file:line. `print` logs at info.
wx.log = {}

---@param ... any
function wx.log.debug(...) end

---@param ... any
function wx.log.info(...) end

---@param ... any
function wx.log.warn(...) end

---@param ... any
function wx.log.error(...) end

---Waits without holding up other messages (inside a handler).
---@param seconds number 0 to 3600.
function wx.sleep(seconds) end

------------------------------------------------------------------------------------------
-- WeChat API (planned: being bound now; `wechat-lua check` names any the host lacks)
------------------------------------------------------------------------------------------

---An API failure: WeChat's errcode and errmsg, or a host-side error (errcode -1).
---@class wx.Error
---@field errcode integer
---@field errmsg string

---A message for customer service or mass sending.
---@alias wx.OutMessage string|wx.TextReply|wx.ImageReply|wx.VoiceReply|wx.VideoReply|wx.MusicReply|wx.NewsReply|{type: "mpnews", media_id: string}|{type: "msgmenu", head_content?: string, list: {id: string, content: string}[], tail_content?: string}|{type: "miniprogrampage", title: string, appid: string, pagepath: string, thumb_media_id: string}

---Customer-service messages (客服消息): reply later or more than once, within 48 hours of
---the user's last message.
wx.kf = {}

---@param openid string
---@param message wx.OutMessage A string is a text message.
---@return boolean? ok true on success
---@return wx.Error? err
function wx.kf.send(openid, message) end

---Shows or hides "typing..." to the user.
---@param openid string
---@param on boolean
---@return boolean? ok true on success
---@return wx.Error? err
function wx.kf.typing(openid, on) end

---@class wx.KfWindow
---@field open boolean Whether customer-service messages can reach the user now.
---@field remaining integer Seconds left in the 48-hour window (0 when closed).
---@field closes_at integer Unix seconds when the window closes.

---The 48-hour window as the host has seen the user's messages.
---@param openid string
---@return wx.KfWindow
function wx.kf.window(openid) end

---Mass sending (群发).
wx.mass = {}

---@class wx.MassSendArgs
---@field to "all"|integer|string[] Every follower, a tag ID, or a list of OpenIDs (2 to 10000).
---@field message wx.OutMessage
---@field send_ignore_reprint? boolean Send even when an article is judged a reprint.
---@field clientmsgid? string Deduplicates retries of one send.

---@class wx.MassSendResult
---@field msg_id integer
---@field msg_data_id? integer Set for article sends.

---@param args wx.MassSendArgs
---@return wx.MassSendResult? result
---@return wx.Error? err
function wx.mass.send(args) end

---Sends a mass message to one user to preview it.
---@param openid string
---@param message wx.OutMessage
---@return boolean? ok true on success
---@return wx.Error? err
function wx.mass.preview(openid, message) end

---Deletes a sent mass message (an article of it, with article_idx).
---@param msg_id integer
---@param article_idx? integer 1-based; all articles when omitted.
---@return boolean? ok true on success
---@return wx.Error? err
function wx.mass.delete(msg_id, article_idx) end

---@param msg_id integer
---@return {msg_id: integer, msg_status: string}? status "SEND_SUCCESS", "SENDING", "SEND_FAIL", "DELETE".
---@return wx.Error? err
function wx.mass.status(msg_id) end

---Template messages (模板消息).
wx.template = {}

---@class wx.TemplateSendArgs
---@field to string OpenID.
---@field template_id string
---@field url? string Opened on tap.
---@field miniprogram? {appid: string, pagepath?: string} Opened on tap instead of url.
---@field data table<string, {value: string, color?: string}> The template's keys.
---@field client_msg_id? string Deduplicates retries.

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

---Followers (用户管理).
wx.user = {}

---@class wx.UserInfo
---@field subscribe integer 1 when following.
---@field openid string
---@field language? string
---@field subscribe_time? integer
---@field unionid? string
---@field remark? string
---@field groupid? integer
---@field tagid_list? integer[]
---@field subscribe_scene? string
---@field qr_scene? integer
---@field qr_scene_str? string

---@param openid string
---@param lang? string "zh_CN" (default), "zh_TW", "en".
---@return wx.UserInfo? info
---@return wx.Error? err
function wx.user.info(openid, lang) end

---@param openids string[] At most 100.
---@return wx.UserInfo[]? infos
---@return wx.Error? err
function wx.user.batchget(openids) end

---One page of follower OpenIDs (10000 at most), from next_openid.
---@param next_openid? string
---@return {total: integer, count: integer, openids: string[], next_openid: string}? page
---@return wx.Error? err
function wx.user.get(next_openid) end

---User tags (标签管理).
wx.tags = {}

---@class wx.Tag
---@field id integer
---@field name string
---@field count integer Followers with the tag.

---@param name string
---@return integer? id
---@return wx.Error? err
function wx.tags.create(name) end

---@return wx.Tag[]? tags
---@return wx.Error? err
function wx.tags.get() end

---@param id integer
---@param name string
---@return boolean? ok true on success
---@return wx.Error? err
function wx.tags.update(id, name) end

---@param id integer
---@return boolean? ok true on success
---@return wx.Error? err
function wx.tags.delete(id) end

---@param tagid integer
---@param openids string[] At most 50.
---@return boolean? ok true on success
---@return wx.Error? err
function wx.tags.batchtagging(tagid, openids) end

---@param tagid integer
---@param openids string[] At most 50.
---@return boolean? ok true on success
---@return wx.Error? err
function wx.tags.batchuntagging(tagid, openids) end

---The tag IDs of one follower.
---@param openid string
---@return integer[]? tagids
---@return wx.Error? err
function wx.tags.getidlist(openid) end

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

---@param menu {button: wx.MenuButton[]} Up to 3 buttons.
---@return boolean? ok true on success
---@return wx.Error? err
function wx.menu.create(menu) end

---@return table? menu As WeChat returns it.
---@return wx.Error? err
function wx.menu.get() end

---@return boolean? ok true on success
---@return wx.Error? err
function wx.menu.delete() end

---Temporary media (素材管理, kept 3 days).
wx.media = {}

---@param type "image"|"voice"|"video"|"thumb"
---@param bytes string The file's contents.
---@param filename? string
---@return {type: string, media_id: string, created_at: integer}? media
---@return wx.Error? err
function wx.media.upload(type, bytes, filename) end

---Parametric QR codes (带参数二维码).
wx.qrcode = {}

---@class wx.QrcodeArgs
---@field scene integer|string Arrives as EventKey `qrscene_<scene>` (subscribe) or `<scene>` (SCAN).
---@field expire_seconds? integer Temporary code valid this long (at most 2592000); permanent when omitted.

---@param args wx.QrcodeArgs
---@return {ticket: string, url: string, expire_seconds?: integer, image_url: string}? qrcode
---@return wx.Error? err
function wx.qrcode.create(args) end

---Any other API: the access_token is added, errcode is turned into `nil, err`.
wx.api = {}

---@param path string e.g. "/cgi-bin/user/info"
---@param query? table<string, string|number>
---@return table? response
---@return wx.Error? err
function wx.api.get(path, query) end

---@param path string
---@param body table Sent as JSON.
---@return table? response
---@return wx.Error? err
function wx.api.post(path, body) end

---State shared between messages, workers and reloads (Lua globals are not).
wx.store = {}

---@param key string
---@return string|number|boolean|table|nil value
function wx.store.get(key) end

---@param key string
---@param value string|number|boolean|table|nil nil deletes.
---@param ttl? number Seconds until the key expires.
function wx.store.set(key, value, ttl) end

---Adds to a number atomically (from 0 when missing) and returns the new value.
---@param key string
---@param by? integer Default 1.
---@return integer
function wx.store.incr(key, by) end

---@param key string
function wx.store.del(key) end
