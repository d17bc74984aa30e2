"""The environment of every test and benchmark run: no real AWS anywhere, the offline model."""

OFFLINE_ENV = {
    # Dummy credentials, and no instance-metadata lookups: nothing can reach AWS.
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "MODEL_PROVIDER": "offline",
    "OFFLINE_TOKEN_DELAY_MS": "0",
}
