"""Accounting: API keys and their limits, the usage ledger and the Prometheus metrics.

The HTTP shell asks it who a request is (:mod:`clawrap.accounting._keys`), whether
it may run (:mod:`clawrap.accounting._limits`), and tells it what a run used
(:mod:`clawrap.accounting._ledger`, :mod:`clawrap.accounting._metrics`);
:mod:`clawrap.accounting._accountant` ties them together. Nothing here knows HTTP.
"""
