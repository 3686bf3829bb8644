"""Check questions.jsonl in this folder against the saved web pages in docs/.

The checks are realdocs-dev's (`../shared/eval/realdocs-dev/verify.py`, loaded
from there, not copied): every gold phrase is in its page's visible text, and
every unanswerable question's key words are absent from every page. Only the
folder and the key words below are this set's.
Usage, from the project root:
  python eval/realdocs-web/verify.py [path/to/realdocs-dev/verify.py]
"""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "..", "..", "..", "shared", "eval", "realdocs-dev", "verify.py")

# Key terms (regex, case-insensitive) that must NOT occur in any page, per unanswerable question.
ABSENT = {
    "what dose of epipen should my peanut allergic toddler carry": [
        r"epi-?pen",
        r"epinephrine",
        r"adrenaline",
        r"auto-?injector",
    ],
    "does hand sanitizer kill superbugs": [r"saniti[sz]", r"alcohol[- ](based|gel|rub)", r"hand ?rub"],
    "can meditation help me have more a-ha moments": [r"meditat", r"mindful"],
    "can i buy orlistat diet pills without a prescription": [r"orlistat", r"xenical", r"\balli\b"],
}


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("REALDOCS_VERIFY", DEFAULT)
    spec = importlib.util.spec_from_file_location("realdocs_verify", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.HERE = HERE
    module.main(ABSENT, 12, 4)


if __name__ == "__main__":
    main()
