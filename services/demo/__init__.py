"""The demo: the order system on one machine, driven with injected failures, then checked.

    sagas demo [--mode orchestrated|choreography] [--orders 500] [--rate 25] [--seed 7]

Modules: `scenario` (orders and failures from a seed), `drive` (place orders,
follow sagas), `observe` (lifecycle and compensation commands per saga),
`checks` (the invariants), `report` (the tables), `main` (the command).
"""
