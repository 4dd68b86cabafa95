//! The outbound WeChat API: access_token lifecycle and one module per API family.
