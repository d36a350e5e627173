"""Client-side (envelope) encryption of records with a KMS multi-region key.

Runs inside the writer and reader functions; never imports the CDK. Modules:
``settings`` (the environment contract), ``context`` (the encryption context), ``errors`` (the
error contract), ``envelope`` (the Encryption SDK), ``records`` (event validation and the item
format), ``service`` (write and read), ``observability`` (logs without plaintext).
"""
