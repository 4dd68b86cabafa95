//! Custom menus (自定义菜单): `menu/create`, `menu/get`, `menu/delete`,
//! `get_current_selfmenu_info`. Menus are passed as the documented JSON (`{"button": [...]}`).

use serde_json::Value;

use super::client::WechatClient;
use super::error::ApiError;

/// Menu API family; get one with [`WechatClient::menu`].
#[derive(Debug, Clone, Copy)]
pub struct Menu<'a> {
    client: &'a WechatClient,
}

impl WechatClient {
    /// Custom menus (自定义菜单).
    pub fn menu(&self) -> Menu<'_> {
        Menu { client: self }
    }
}

impl Menu<'_> {
    /// `menu/create` with the documented body, e.g. `{"button":[{"type":"click","name":"今日歌曲","key":"V1001_TODAY_MUSIC"}]}`.
    pub async fn create(&self, menu: &Value) -> Result<(), ApiError> {
        self.client
            .post("/cgi-bin/menu/create", menu)
            .await
            .map(drop)
    }

    /// `menu/get`: the menu created through the API (`{"menu": {...}}`; 46003 when none).
    pub async fn get(&self) -> Result<Value, ApiError> {
        self.client.get("/cgi-bin/menu/get", &[]).await
    }

    /// `menu/delete`: remove the menu (including conditional menus).
    pub async fn delete(&self) -> Result<(), ApiError> {
        self.client.get("/cgi-bin/menu/delete", &[]).await.map(drop)
    }

    /// `get_current_selfmenu_info`: the menu in effect, however it was set (`is_menu_open`, `selfmenu_info`).
    pub async fn get_current_selfmenu_info(&self) -> Result<Value, ApiError> {
        self.client
            .get("/cgi-bin/get_current_selfmenu_info", &[])
            .await
    }
}
