"""GradPIM: optimizer updates inside DRAM (see ``docs/gradpim.md``).

Modules: ``config`` (unit knobs), ``datapath`` (column dtypes and conversions), ``store``
(functional DRAM contents), ``unit`` (one bank-group unit and its instructions), ``kernels``
(optimizers as command programs, closed-form bounds), ``channel`` (the steppable per-channel
scheduler, standalone or sharing a channel with host traffic), ``engine`` (timed runs),
``layout`` (co-located and naive placement policies), ``functional`` (running programs on real
values), ``reference`` (numpy optimizers following torch.optim), ``errors``.
"""
