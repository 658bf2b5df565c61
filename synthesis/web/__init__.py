"""The Tornado front end: REST handlers, sockets, and the Application that mounts them."""
