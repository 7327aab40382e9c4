"""tests/image_store.py: what the test hosts pull, and how a host's data root gets the store."""
import image_store


def test_hub_images_are_pulled_by_their_name_others_by_their_kit_registry_path():
    refs = image_store.pull_refs()
    assert "n8nio/n8n:2.41.1" in refs and "n8nio/n8n:2.40.7" in refs
    assert "registry.kit.aistack.test:5000/open-webui/open-webui:v0.12.4" in refs
    assert not any(ref.startswith("ghcr.io/") for ref in refs)


def test_layer_files_are_hard_links_and_image_metadata_is_a_copy(tmp_path):
    store, target = tmp_path / "store", tmp_path / "host"
    (store / "overlay2" / "abc" / "diff").mkdir(parents=True)
    (store / "overlay2" / "abc" / "diff" / "node").write_text("layer")
    (store / "image" / "overlay2").mkdir(parents=True)
    (store / "image" / "overlay2" / "repositories.json").write_text("{}")
    target.mkdir()
    assert image_store.fill_dir(target, store)
    layer, metadata = target / "overlay2" / "abc" / "diff" / "node", target / "image" / "overlay2" / "repositories.json"
    assert layer.read_text() == "layer" and layer.stat().st_ino == (store / "overlay2" / "abc" / "diff" / "node").stat().st_ino
    assert metadata.read_text() == "{}"
    assert metadata.stat().st_ino != (store / "image" / "overlay2" / "repositories.json").stat().st_ino


def test_a_data_root_that_is_not_empty_is_left_alone(tmp_path):
    store, target = tmp_path / "store", tmp_path / "host"
    (store / "overlay2").mkdir(parents=True)
    (store / "image").mkdir()
    target.mkdir()
    (target / "engine-id").write_text("x")
    assert not image_store.fill_dir(target, store)
    assert sorted(path.name for path in target.iterdir()) == ["engine-id"]
