"""The web console: the pages people use, server-rendered, calling the services' HTTP APIs with their token."""
