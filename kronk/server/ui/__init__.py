"""The browser UI's server side: static files (`routes`) and the cookie login (`session`)."""
