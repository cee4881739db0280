"""evo1: collect, train, benchmark, serve and deploy the Evo-1 vision-language-action policy."""

__version__ = "0.1.0"
