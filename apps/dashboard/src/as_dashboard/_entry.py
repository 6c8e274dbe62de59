"""The script ``streamlit run`` executes: the dashboard's pages (:func:`as_dashboard.app.main`)."""

from as_dashboard.app import main

main()
