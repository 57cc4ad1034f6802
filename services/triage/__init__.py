"""The claim triage agent: a text classifier trained at start (`model`), served as a saga
step through `services.agent_step` (`domain`)."""
