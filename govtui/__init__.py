"""govtui: govern contractor access to client datasets (grant, pause, review, audit).

A regular package, not a namespace one: with govtui installed as a wheel, a checkout on
sys.path is then either wholly the package imported or not at all, never merged with the
installed copy module by module."""
