"""The dashboard's entry point: `streamlit run app.py` (see `pharmaflow dashboard`).

One page per audience, each a file in views/: live operations for the pharmacy floor, batch
quality, production performance and compliance for plant QA, logistics and cold chain,
patient feedback, recall, and the models' forecasts and risk scores. (Not pages/: Streamlit
turns a pages/ folder beside the entry point into a navigation of its own, which a page
opened by its URL would get instead.)
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).parent / "views"
SECTIONS = {
    "Pharmacy": [("live.py", "Live operations", ":material/monitoring:")],
    "Plant": [
        ("batch_quality.py", "Batch quality", ":material/science:"),
        ("production.py", "Production performance", ":material/precision_manufacturing:"),
        ("compliance.py", "Compliance", ":material/fact_check:"),
    ],
    "Distribution": [("logistics.py", "Logistics and cold chain", ":material/local_shipping:")],
    "Patients": [("feedback.py", "Patient feedback", ":material/reviews:")],
    "Recall": [("recall.py", "Recall", ":material/account_tree:")],
    "Models": [("models.py", "Forecasts and risk", ":material/online_prediction:")],
}


def main() -> None:
    st.set_page_config(page_title="pharmaflow", page_icon=":material/medication:", layout="wide")
    pages = {
        section: [
            st.Page(str(PAGES / name), title=title, icon=icon, url_path=name.removesuffix(".py"))
            for name, title, icon in entries
        ]
        for section, entries in SECTIONS.items()
    }
    st.navigation(pages).run()


main()
