"""The admin dashboard: server-rendered HTML pages under /admin (see hub.web.pages)."""
