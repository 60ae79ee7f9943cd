"""Release: the human approval (``approval``), moving the ``production`` alias under a lock
(``registry``), telling the model server (``deploy``) and checking what it serves
(``canary``)."""
