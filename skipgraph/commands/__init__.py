"""The ``skipgraph`` commands, apart from the stages they drive: a command may use any stage
(spec, graph, compile, render, export, train), a stage never imports a command or another
stage sideways. Each module adds its group of subcommands with ``add_commands(add)``; parsing
a command line imports no torch (commands import what they need when they run).
"""
COMMAND_GROUPS = ("spec", "build", "train", "render", "view", "nnunet",
                  "peer")  # modules, in the order `--help` lists
