"""The pipeline: the stateless checks in order (``checks``, pure, run in check processes by
``runner``), the stateful decisions (``lifecycle``, ``statuses``, ``business``: pure), what the hub
believes of a message (``intake``, ``connection``, ``authentication``), the worker that runs
the stages and records them (``worker``, ``gate``, ``outage``), refusals (``refusal``) and dead
letters (``deadletters``)."""
