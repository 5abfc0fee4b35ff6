"""A lab around a real Postfix: a scripted SMTP/LMTP peer, the Postfix
instance, and the traffic script whose expected counts come from what
crossed the wire."""
