"""Staff pages: the last transport comparison (manage.py compare_transports) as charts."""

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from notifications import transport_results
from notifications.transport_charts import charts


@staff_member_required
def transports(request: HttpRequest) -> HttpResponse:
    document = transport_results.load_last()
    context = {
        "result": document,
        "charts": charts(document) if document else [],
        "columns": transport_results.COLUMNS,
        "rows": transport_results.table_cells(document) if document else [],
    }
    return render(request, "notifications/staff_transports.html", context)
