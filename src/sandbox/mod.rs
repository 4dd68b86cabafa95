//! Fake WeChat servers for tests and local prototyping.
