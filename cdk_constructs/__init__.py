"""Reusable constructs of the toolkit, one per concern.

Named ``cdk_constructs`` and not ``constructs``: a top-level package called ``constructs``
shadows the ``constructs`` library that aws-cdk-lib imports
(``ModuleNotFoundError: constructs._jsii``).
"""
