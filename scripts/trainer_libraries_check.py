#!/usr/bin/env python3
"""Load `trajforge export` files with the libraries trainers use, as a user would, and fail
loudly when one refuses them. Used by crates/trajforge/tests/cli/export.rs.

  trainer_libraries_check.py datasets FORMAT DATA.jsonl DATA.parquet
      `datasets.load_dataset` on both files: same rows, and the nested columns (messages,
      conversations, tools) equal to the JSONL's without any conversion.
  trainer_libraries_check.py template TOKENIZER_DIR DATA.(jsonl|parquet) [EXPECT]
      Every row of an openai or hermes export through transformers' `apply_chat_template`
      (openai rows with `tools=row["tools"]`) and TRL's `apply_chat_template`, as loaded by
      `datasets`. EXPECT is `ok` (default: every row renders) or `refused` (every row with two
      user turns in a row is refused, and there is at least one).
  trainer_libraries_check.py llamafactory DATASET_DIR NAME
      LLaMA-Factory's own code on a ShareGPT export: its parser reads dataset_info.json, its
      ShareGPT converter aligns every row (a row it would skip fails the check), its function
      and tool formatters (Qwen's format) read every function_call turn and the tools column.
      LLaMA-Factory's package pulls torch, so it is installed without dependencies and only
      these modules are loaded, with its logging and constants stubbed.

Prints one JSON line of figures.
"""
import importlib.util
import json
import sys
import types

from datasets import load_dataset


def load(path):
    kind = "parquet" if path.endswith(".parquet") else "json"
    return load_dataset(kind, data_files=path, split="train")


def check_datasets(fmt, jsonl, parquet):
    lines = [json.loads(line) for line in open(jsonl, encoding="utf-8")]
    dj, dp = load(jsonl), load(parquet)
    assert len(dj) == len(dp) == len(lines), (len(dj), len(dp), len(lines))
    nested = {"openai": ["messages", "tools"], "hermes": ["messages"],
              "sharegpt": ["conversations", "tools"], "raw": ["trajectory"]}[fmt]

    def strip_nulls(v):
        # Arrow structs give every message every field (null where a message has none).
        if isinstance(v, dict):
            return {k: strip_nulls(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [strip_nulls(x) for x in v]
        return v

    calls = 0
    for i, line in enumerate(lines):
        for col in nested:
            want = strip_nulls(line[col])
            for name, ds in (("jsonl", dj), ("parquet", dp)):
                got = strip_nulls(ds[i][col])
                if name == "parquet" and col == "messages" and fmt == "openai":
                    calls += parquet_arguments_as_written(got, want)
                assert got == want, (name, col, i, str(got)[:300], str(want)[:300])
        if fmt == "openai":
            assert isinstance(dp[i]["tools"], list) and all(isinstance(t, dict) for t in dp[i]["tools"])
    assert fmt != "openai" or calls > 0, "no tool call to check"
    print(json.dumps({"rows": len(lines), "columns": nested, "object_arguments": calls}))


def parquet_arguments_as_written(got, want):
    """In Parquet a call's `arguments` load as the object itself (what templates that print
    `arguments | tojson` need), with the keys in the order of the JSONL's text (the model's);
    they are put back as that text for the row comparison. Returns the calls checked."""
    n = 0
    for g, w in zip(got, want):
        for gc, wc in zip(g.get("tool_calls") or [], w.get("tool_calls") or []):
            args, text = gc["function"]["arguments"], wc["function"]["arguments"]
            assert isinstance(args, dict), ("arguments not an object", args)
            assert json.dumps(args, ensure_ascii=False) == json.dumps(json.loads(text), ensure_ascii=False), (args, text)
            gc["function"]["arguments"] = text
            n += 1
    return n


def check_template(tok_dir, data, expect="ok"):
    from transformers import AutoTokenizer
    from trl.data_utils import apply_chat_template as trl_apply

    tok = AutoTokenizer.from_pretrained(tok_dir)
    ds = load(data)
    rendered = refused = doubled = 0
    for row in ds:
        messages = [{k: v for k, v in m.items() if v is not None} for m in row["messages"]]
        tools = row.get("tools")
        two_users = any(a["role"] == b["role"] == "user" for a, b in zip(messages, messages[1:]))
        doubled += two_users
        try:
            text = tok.apply_chat_template(messages, tools=tools, tokenize=False)
            trl_text = trl_apply({"messages": messages}, tok, tools=tools)["text"]
        except Exception as e:  # the template's raise_exception, or a type error
            if expect == "refused" and two_users:
                refused += 1
                continue
            raise AssertionError(f"row {row['id']}: {e}") from e
        assert text == trl_text, row["id"]
        for m in messages:
            for call in m.get("tool_calls") or []:
                # The arguments appear as the model wrote them (key order kept).
                args = call["function"]["arguments"]
                if isinstance(args, str):
                    assert args in text or json.dumps(json.loads(args)) in text, (row["id"], args)
                else:  # Parquet: the object, printed by the template's `tojson` in its key order
                    assert json.dumps(args, ensure_ascii=False) in text, (row["id"], args)
        rendered += 1
    if expect == "refused":
        assert refused == doubled and refused > 0, (refused, doubled)
    print(json.dumps({"rows": len(ds), "rendered": rendered, "refused": refused}))


def llamafactory_modules():
    """LLaMA-Factory's data modules without its package __init__ (which imports torch)."""
    root = importlib.util.find_spec("llamafactory").submodule_search_locations[0]
    for name in ("llamafactory", "llamafactory.data", "llamafactory.extras"):
        pkg = types.ModuleType(name)
        pkg.__path__ = [root + name[len("llamafactory"):].replace(".", "/")]
        sys.modules[name] = pkg
    # extras.logging and extras.constants import peft/torch; the data modules need a logger
    # factory and the name of the dataset registry only.
    log = types.ModuleType("llamafactory.extras.logging")
    quiet = lambda *a, **k: None  # noqa: E731 (its warnings are the skips the check counts)
    log.get_logger = lambda name=None: types.SimpleNamespace(
        warning_rank0=quiet, info_rank0=quiet, warning_rank0_once=quiet, warning=quiet, info=quiet)
    sys.modules["llamafactory.extras.logging"] = log
    consts = types.ModuleType("llamafactory.extras.constants")
    consts.DATA_CONFIG = "dataset_info.json"
    sys.modules["llamafactory.extras.constants"] = consts
    misc = types.ModuleType("llamafactory.extras.misc")
    misc.use_modelscope = misc.use_openmind = lambda: False
    sys.modules["llamafactory.extras.misc"] = misc

    def sub(name):
        spec = importlib.util.spec_from_file_location(
            f"llamafactory.data.{name}", f"{root}/data/{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        return mod

    return {n: sub(n) for n in ("data_utils", "tool_utils", "formatter", "parser", "converter")}


def check_llamafactory(dataset_dir, name):
    m = llamafactory_modules()
    (attr,) = m["parser"].get_dataset_list([name], dataset_dir)
    assert attr.formatting == "sharegpt", attr.formatting
    converter = m["converter"].SharegptDatasetConverter(attr, types.SimpleNamespace(media_dir=dataset_dir))
    function = m["formatter"].FunctionFormatter(slots=["{{content}}"], tool_format="qwen")
    tools = m["formatter"].ToolFormatter(tool_format="qwen")
    ds = load(f"{dataset_dir}/{attr.dataset_name}")
    turns = calls = 0
    for row in ds:
        out = converter(row)
        assert out["_prompt"] and out["_response"], f"LLaMA-Factory skips row {row['id']}"
        assert out["_response"][0]["role"] in ("assistant", "function"), row["id"]
        turns += len(out["_prompt"]) + len(out["_response"])
        assert tools.apply(content=out["_tools"]), row["id"]
        for msg in out["_prompt"] + out["_response"]:
            if msg["role"] == "function":
                text = "".join(s for s in function.apply(content=msg["content"], thought_words=("<think>", "</think>")) if isinstance(s, str))
                assert "<tool_call>" in text, text
                calls += 1
    # The check can fail: the same row with an observation after its last model turn is skipped.
    broken = dict(ds[0])
    broken[attr.messages] = list(broken[attr.messages]) + [{"from": "observation", "value": "late"}]
    assert not converter(broken)["_prompt"], "the alignment check did not catch a trailing observation"
    print(json.dumps({"rows": len(ds), "turns": turns, "function_calls": calls}))


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    {"datasets": check_datasets, "template": check_template, "llamafactory": check_llamafactory}[mode](*args)


if __name__ == "__main__":
    main()
