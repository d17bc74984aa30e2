import pytest

from bedrock.config import ConfigError, Settings


def test_defaults_need_no_environment():
    assert Settings.from_env({}) == Settings()
    settings = Settings.from_env({})
    assert settings.model_provider == "offline" and settings.port == 8080
    assert settings.memory_backend == "" and settings.checkpoint_durability == "exit"


def test_values_are_parsed_and_memory_id_names_are_both_read():
    env = {"MODEL_PROVIDER": "Bedrock", "PORT": "9000", "MODEL_TEMPERATURE": "0.5", "AGENTCORE_MEMORY_ID": "m-1"}
    settings = Settings.from_env(env)
    assert (settings.model_provider, settings.port, settings.temperature) == ("bedrock", 9000, 0.5)
    assert settings.agentcore_memory_id == "m-1"
    assert Settings.from_env({**env, "BEDROCK_AGENTCORE_MEMORY_ID": "m-2"}).agentcore_memory_id == "m-2"


@pytest.mark.parametrize(
    "env, message",
    [({"PORT": "eighty"}, "PORT must be an integer"), ({"MODEL_MAX_TOKENS": "0"}, "MODEL_MAX_TOKENS must be >= 1"),
     ({"MODEL_PROVIDER": "openai"}, "MODEL_PROVIDER must be one of"), ({"REQUEST_TIMEOUT_S": "soon"}, "a number"),
     ({"WS_ALLOWED_ORIGINS": "app.example.com"}, "WS_ALLOWED_ORIGINS must list origins"),
     ({"WS_ALLOWED_ORIGINS": "https://app.example.com/chat"}, "WS_ALLOWED_ORIGINS must list origins"),
     ({"WS_MAX_MESSAGES_PER_S": "0"}, "WS_MAX_MESSAGES_PER_S must be >= 1")],
)
def test_bad_values_are_clear_errors(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_allowed_origins_are_read_as_browsers_write_them():
    settings = Settings.from_env({"WS_ALLOWED_ORIGINS": " https://App.Example.com/ , http://localhost:3000"})
    assert settings.ws_allowed_origins == ("https://app.example.com", "http://localhost:3000")
