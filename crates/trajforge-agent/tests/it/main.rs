//! Integration tests of the agent loop against the scripted fake OpenAI-compatible server.

mod agent_loop;
