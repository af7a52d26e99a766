"""``RegionInferencer`` does no model work of its own: it reaches the model only through
``CLOC``'s own methods and attributes, never into its sub-modules (encoders, losses,
Prompter), so the temperature, the patch projection, box scoring and the class-embedding
cache each have one home in the model (read with :mod:`ast`, nothing imported)."""
import ast
from pathlib import Path

import cllip_mm.apis.region_inferencer as region_inferencer
from cllip_mm.models.multimodal import CLOC

#: ``CLOC``'s sub-modules: ``self.model.<one of these>`` is model internals.
SUBMODULES = ('image_encoder', 'text_encoder', 'tokenizer', 'clip_loss', 'region_loss',
              'prompter', 'grounding_head', 'grounding_loss')


def _model_attributes():
    """``(attribute, line)`` of every ``self.model.<attribute>`` in the inferencer."""
    tree = ast.parse(Path(region_inferencer.__file__).read_text(encoding='utf-8'))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == 'model' and isinstance(node.value.value, ast.Name)
                and node.value.value.id == 'self'):
            yield node.attr, node.lineno


def test_the_inferencer_reaches_no_submodule_of_the_model():
    used = list(_model_attributes())
    assert len(used) > 5  # the walk sees the model calls
    inside = [f'line {line}: self.model.{attr}' for attr, line in used if attr in SUBMODULES]
    assert not inside, 'the inferencer reaches into the model:\n' + '\n'.join(inside)


def test_what_the_inferencer_calls_is_public_model_api():
    public = {attr for attr, _ in _model_attributes()}
    # BaseModel / nn.Module API used by MMEngine's BaseInferencer, and CLOC's own
    base = {'data_preprocessor', 'dataset_meta', 'parameters', 'eval', 'to', 'cfg'}
    missing = sorted(a for a in public - base if not hasattr(CLOC, a)
                     and a not in ('vocabulary_template', 'phrase_context_length'))
    assert not missing, f'not CLOC methods / properties: {missing}'
    assert all(not a.startswith('_') for a in public), sorted(public)
